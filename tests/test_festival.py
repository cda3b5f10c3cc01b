"""asrlib.corpus.festival: Festival's diphone voice and MBROLA's voices, their phones (checked
against CMUdict), their determinism, and the corpora that add their speakers."""

import shutil

import numpy as np
import pytest

from asrlib.corpus import festival, synthetic
from asrlib.corpus.store import CorpusError
from tests.test_flite import SENTENCES, assert_dictionary_labels_that_tile


def _has_voices(*voices) -> bool:
    try:
        for voice in voices:
            festival.festival_program(voice)
    except CorpusError:
        return False
    return True


needs_festival = pytest.mark.skipif(not _has_voices("ked"), reason="festival and its ked voice are not installed "
                                                                    "(make test installs them as root)")
needs_mbrola = pytest.mark.skipif(not _has_voices(*synthetic.MBROLA_VOICES),
                                  reason="MBROLA's US voices for festival are not installed (make test installs them as "
                                         "root on Debian: .ci/install-mbrola)")


@needs_festival
@pytest.mark.parametrize("text", SENTENCES)
def test_phones_are_cmudicts_and_tile_the_audio(text):
    assert_dictionary_labels_that_tile(festival.synthesise(text, festival.FestivalVoice("ked", 1.1)), text)


@needs_festival
def test_its_er_r_is_the_dictionarys_er():
    """'Her' and 'word' are hh er and w er d in CMUdict; Festival's lexicon writes er r."""
    assert_dictionary_labels_that_tile(festival.synthesise("Her word first."), "Her word first.")


def test_merge_er_r_keeps_a_second_r():
    ends = [(0.1, "er"), (0.2, "r"), (0.3, "r"), (0.4, "uw"), (0.5, "er"), (0.6, "d")]
    assert festival.merge_er_r(ends) == [(0.2, "er"), (0.3, "r"), (0.4, "uw"), (0.5, "er"), (0.6, "d")]


@needs_festival
def test_a_result_is_a_function_of_text_and_voice_and_stretch_sets_the_rate():
    one, two = (festival.synthesise(SENTENCES[1], festival.FestivalVoice("ked", 1.2)) for _ in range(2))
    np.testing.assert_array_equal(one["audio"], two["audio"])
    assert one["segments"] == two["segments"]
    fast = festival.synthesise(SENTENCES[1], festival.FestivalVoice("ked", 0.9))
    assert len(one["audio"]) / len(fast["audio"]) == pytest.approx(1.2 / 0.9, rel=0.1)


def test_unknown_voices_and_a_missing_program_are_named(monkeypatch):
    with pytest.raises(ValueError, match="unknown festival voice 'slt'"):
        festival.FestivalVoice("slt")
    monkeypatch.setattr(festival.shutil, "which", lambda name: None)
    festival.festival_program.cache_clear()
    with pytest.raises(CorpusError, match="apt-get install festival festvox-kdlpc16k"):
        festival.synthesise("hello")
    with pytest.raises(CorpusError, match="apt-get install festival festvox-us1' .*non-free"):
        festival.synthesise("hello", festival.FestivalVoice("us1"))
    monkeypatch.undo()
    festival.festival_program.cache_clear()
    monkeypatch.setitem(festival.VOICES, "us2", festival.VOICES["us2"]._replace(name="nosuch_mbrola"))  # cannot load
    if shutil.which("festival"):
        with pytest.raises(CorpusError, match="voice 'us2' needs the festival program and the voice"):
            festival.festival_program("us2")
    festival.festival_program.cache_clear()


def test_quotes_cannot_break_the_script():
    scheme = festival.script('say "hi" \\ now', festival.FestivalVoice(), "/tmp/x.wav")
    assert scheme.count('"') == 8 and "\\" not in scheme   # only the script's own four pairs of quotes remain


def test_festival_adds_four_speakers_after_the_flite_corpus_and_keeps_its_utterances(added_utterances):
    extra = added_utterances("espeak+neural+kokoro+flite", "festival")
    assert len(extra) == len(synthetic.FESTIVAL_STRETCHES) * synthetic.FESTIVAL_PER_SPEAKER * 2
    assert {s.speaker.voice.stretch for s in extra} == set(synthetic.FESTIVAL_STRETCHES)
    assert all(s.speaker.split == "train" and s.speaker.id.startswith("fs-") for s in extra)


@needs_mbrola
@pytest.mark.parametrize("voice", synthetic.MBROLA_VOICES)
@pytest.mark.parametrize("text", SENTENCES[:2])
def test_mbrola_voices_phones_are_cmudicts_and_tile_the_audio(voice, text):
    assert_dictionary_labels_that_tile(festival.synthesise(text, festival.FestivalVoice(voice, 1.1)), text)


@needs_mbrola
def test_each_mbrola_voice_is_its_own_speaker_us1_a_woman():
    """The voice asked for is the voice heard: us1's median pitch (librosa's YIN) is more than 1.3 times
    either man's (156 Hz against 88 and 103 when written), and the same sentence differs between the two men."""
    import librosa

    said = {v: festival.synthesise(SENTENCES[0], festival.FestivalVoice(v))["audio"] for v in synthetic.MBROLA_VOICES}
    pitch = {v: np.median(librosa.yin(a, fmin=60, fmax=400, sr=16000)) for v, a in said.items()}
    assert pitch["us1"] > 1.3 * max(pitch["us2"], pitch["us3"]), pitch
    n = min(len(said["us2"]), len(said["us3"]))
    assert not np.allclose(said["us2"][:n], said["us3"][:n], atol=1e-3)


def test_mbrola_adds_twelve_speakers_after_the_flite_corpus_and_keeps_its_utterances(added_utterances):
    extra = added_utterances("espeak+neural+kokoro+flite", "mbrola")
    assert len(extra) == len(synthetic.MBROLA_VOICES) * len(synthetic.FESTIVAL_STRETCHES) * 2 * 3
    assert {(s.speaker.voice.voice, s.speaker.sex) for s in extra} == {("us1", "f"), ("us2", "m"), ("us3", "m")}
    assert all(s.speaker.split == "train" and s.speaker.id.startswith("mb-") for s in extra)
    assert len({s.speaker.id for s in extra}) == 12


def test_both_diphone_families_are_the_festival_corpus_then_mbrolas_speakers():
    flite = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite")
    with_festival = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite+festival")
    with_mbrola = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite+mbrola")
    both = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite+festival+mbrola")
    assert both[:len(with_festival)] == with_festival
    assert both[len(with_festival):] == with_mbrola[len(flite):]
    assert len({s.id for s in both}) == len(both)
