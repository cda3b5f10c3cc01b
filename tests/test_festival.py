"""asrlib.corpus.festival: Festival's diphone voice, its phones (checked against CMUdict), its
determinism, and the corpus that adds its speakers."""

import shutil

import numpy as np
import pytest

from asrlib.corpus import festival, synthetic
from asrlib.corpus.store import CorpusError
from tests.test_flite import SENTENCES, assert_dictionary_labels_that_tile


def _has_voice() -> bool:
    try:
        festival.festival_program()
    except CorpusError:
        return False
    return True


needs_festival = pytest.mark.skipif(not _has_voice(), reason="festival and its ked voice are not installed "
                                                             "(make test installs them as root)")


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
    monkeypatch.undo()
    festival.festival_program.cache_clear()
    monkeypatch.setattr(festival, "VOICES", ("nosuch",))  # a voice festival cannot load
    if shutil.which("festival"):
        with pytest.raises(CorpusError, match="and its ked voice"):
            festival.festival_program()
    festival.festival_program.cache_clear()


def test_quotes_cannot_break_the_script():
    scheme = festival.script('say "hi" \\ now', festival.FestivalVoice(), "/tmp/x.wav")
    assert scheme.count('"') == 8 and "\\" not in scheme   # only the script's own four pairs of quotes remain


def test_festival_adds_four_speakers_after_the_flite_corpus_and_keeps_its_utterances():
    with_flite = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite")
    with_festival = synthetic.utterance_specs(2, "espeak+neural+kokoro+flite+festival")
    assert with_festival[:len(with_flite)] == with_flite
    extra = with_festival[len(with_flite):]
    assert len(extra) == len(synthetic.FESTIVAL_STRETCHES) * synthetic.FESTIVAL_PER_SPEAKER * 2
    assert {s.speaker.voice.stretch for s in extra} == set(synthetic.FESTIVAL_STRETCHES)
    assert all(s.speaker.split == "train" and s.speaker.id.startswith("fs-") for s in extra)
