"""asrlib.corpus.flite: Flite's voices made from people, their phones (checked against CMUdict and
TIMIT's folding), their determinism, and the corpus that adds their speakers."""

import shutil

import numpy as np
import pytest

from asrlib.corpus import flite, synthetic
from asrlib.corpus.store import CorpusError
from asrlib.phones import ESPEAK_TO_39, TIMIT_TO_39, PhoneSet
from asrlib.realspeech import fold_arpabet, pronounce

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="the flite program is not installed (make test installs it as root)")
SENTENCES = ("Her car is parked near the north door.", "The quick brown fox jumps over the lazy dog.")


def test_every_flite_phone_is_a_corpus_label_of_its_timit_class():
    """Flite's phones are TIMIT labels; each is written as an espeak label that folds to the same class."""
    for phone, label in flite.FLITE_TO_ESPEAK.items():
        assert label in ESPEAK_TO_39, phone
        assert ESPEAK_TO_39[label] == TIMIT_TO_39[phone], phone


@needs_flite
@pytest.mark.parametrize("voice", flite.VOICES)
@pytest.mark.parametrize("text", SENTENCES)
def test_phones_are_cmudicts_and_tile_the_audio(text, voice):
    """The labels, folded, are CMUdict's pronunciation of the words (the human clips' convention:
    'car' is k aa r), and the segments cover the audio end to end, silence at both ends."""
    assert_dictionary_labels_that_tile(flite.synthesise(text, flite.FliteVoice(voice)), text)


def assert_dictionary_labels_that_tile(result: dict, text: str) -> None:
    """A synthesiser's record (Flite's or Festival's) of ``text``: segments that tile the audio with
    silence at both ends, and labels that fold to CMUdict's pronunciation of the words."""
    segments = result["segments"]
    assert segments[0][0] == 0 and segments[-1][1] == len(result["audio"])
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(segments, segments[1:]))
    assert segments[0][2] == "h#" and segments[-1][2] == "h#"
    heard = [c for c in PhoneSet("espeak").fold([s[2] for s in segments]) if c != "sil"]
    assert heard == [c for c in fold_arpabet(pronounce(text)) if c != "sil"]


@needs_flite
def test_a_result_is_a_function_of_text_and_voice():
    voice = flite.FliteVoice("kal16", 1.1, 125.0)
    one, two = flite.synthesise(SENTENCES[0], voice), flite.synthesise(SENTENCES[0], voice)
    np.testing.assert_array_equal(one["audio"], two["audio"])
    assert one["segments"] == two["segments"]
    other = flite.synthesise(SENTENCES[0], flite.FliteVoice("kal16", 1.1, 95.0))
    assert not np.array_equal(other["audio"], one["audio"])  # another pitch


@needs_flite
def test_stretch_sets_the_speaking_rate():
    slow, fast = (len(flite.synthesise(SENTENCES[1], flite.FliteVoice("rms", s))["audio"]) for s in (1.2, 0.9))
    assert slow / fast == pytest.approx(1.2 / 0.9, rel=0.05)


def test_the_test_clips_speakers_and_unknown_voices_are_refused():
    for name in ("slt", "awb", "joe"):
        with pytest.raises(ValueError, match=f"unknown flite voice '{name}'"):
            flite.FliteVoice(name)


def test_a_missing_program_or_voice_says_so(monkeypatch):
    monkeypatch.setattr(flite.shutil, "which", lambda name: None)
    flite.flite_program.cache_clear()
    with pytest.raises(CorpusError, match="apt-get install flite"):
        flite.synthesise("hello")
    monkeypatch.undo()
    flite.flite_program.cache_clear()
    if shutil.which("flite"):  # flite itself would speak with its default voice
        monkeypatch.setattr(flite, "VOICES", ("rms", "nosuch"))
        with pytest.raises(CorpusError, match=r"lacks the voices \['nosuch'\]"):
            flite.flite_program()
    flite.flite_program.cache_clear()


def test_unreadable_output_is_named():
    with pytest.raises(CorpusError, match="'0.5'"):
        flite.parse_segments("pau:0.1 0.5", "a test")


def test_flite_adds_eight_speakers_after_the_kokoro_corpus_and_keeps_its_utterances(added_utterances):
    extra = added_utterances("espeak+neural+kokoro", "flite")
    assert len(extra) == len(synthetic.FLITE_SPEAKERS) * synthetic.FLITE_PER_SPEAKER * 2
    voices = {s.speaker.id: s.speaker.voice for s in extra}
    assert len(voices) == 8 and len({v.name for v in voices.values()}) == 8
    assert {v.voice for v in voices.values()} == set(flite.VOICES)
    assert all(s.speaker.split == "train" and s.speaker.id.startswith("fl-") for s in extra)
