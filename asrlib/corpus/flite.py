"""Speech from Flite's voices built from people, with flite's own phones and their end times.

Flite (CMU's small synthesiser, the Debian/Ubuntu package ``flite``) ships voices made from
recordings of people: ``rms`` (a statistical parametric voice, built with CMU's Clustergen: a model
that predicts a spectral envelope and a pitch frame by frame, which a vocoder turns into sound,
trained on a US man's CMU ARCTIC recordings) and ``kal16`` (a diphone voice: recorded snippets from
the middle of one phone to the middle of the next, of another US man, joined and bent to the
wanted length and pitch). Both differ from espeak's formant synthesis and from the neural voices of
:mod:`asrlib.corpus.neural` and :mod:`asrlib.corpus.kokoro`. Flite's voices of slt and awb, the two
ARCTIC speakers among the human test clips, are never used.

Flite prints every segment with its end time (``-psdur``); its phones are the ARPAbet of its
CMUdict-based lexicon, the convention of the human clips' references (``car`` is ``k aa r``,
where espeak writes one r-coloured vowel). :data:`FLITE_TO_ESPEAK` writes each as the corpus's
label of the same scoring class, so the corpus keeps one label set. Flite is deterministic: the
same text and voice give the same samples.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from asrlib.corpus.store import CorpusError
from asrlib.phones import UnknownPhoneError

FLITE_SAMPLE_RATE = 16_000
VOICES = ("rms", "kal16")  # never slt or awb: their ARCTIC recordings are among the human test clips
# flite's phones (CMU's US English set) as the corpus's espeak labels of the same scoring class
FLITE_TO_ESPEAK = {
    "aa": "A:", "ae": "a", "ah": "V", "ao": "O:", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI", "eh": "E",
    "er": "3:", "ey": "eI", "ih": "I", "iy": "i:", "ow": "oU", "oy": "OI", "uh": "U", "uw": "u:",
    "b": "b", "d": "d", "g": "g", "p": "p", "t": "t", "k": "k", "dx": "t#", "ch": "tS", "jh": "dZ",
    "f": "f", "v": "v", "th": "T", "dh": "D", "s": "s", "z": "z", "sh": "S", "zh": "Z", "hh": "h",
    "m": "m", "n": "n", "ng": "N", "l": "l", "r": "r", "w": "w", "y": "j", "pau": "pau",
}


@dataclass(frozen=True)
class FliteVoice:
    """A speaker of the Flite voice family: one of :data:`VOICES` at a speaking rate (``stretch`` > 1
    is slower) and a mean pitch in Hz."""

    voice: str
    stretch: float = 1.0
    f0: float = 110.0

    def __post_init__(self):
        if self.voice not in VOICES:
            raise ValueError(f"unknown flite voice {self.voice!r}; expected one of {VOICES}")

    @property
    def name(self) -> str:
        return f"flite-{self.voice} x{1 / self.stretch:.2f} {self.f0:.0f} Hz"


@lru_cache(maxsize=1)
def flite_program() -> str:
    """The path of the ``flite`` program, or a clear error saying how to install it (or that it
    lacks a voice of :data:`VOICES`: flite would quietly speak with its default voice instead)."""
    path = shutil.which("flite")
    if path is None:
        raise CorpusError("the Flite voice family needs the flite program: 'apt-get install flite' (Debian, Ubuntu, "
                          "Colab) or 'brew install flite'; `make test` installs it where it can")
    listed = subprocess.run([path, "-lv"], capture_output=True, text=True).stdout.split()
    missing = [v for v in VOICES if v not in listed]
    if missing:
        raise CorpusError(f"the installed flite ({path}) lacks the voices {missing}; it has {listed[2:]}")
    return path


def parse_segments(printed: str, where: str = "") -> list[tuple[float, str]]:
    """Flite's ``-psdur`` output (``phone:end_seconds`` separated by spaces; Festival's, as
    :mod:`asrlib.corpus.festival` asks for it, too) as (end, phone) pairs.

    >>> parse_segments("pau:0.119 hh:0.262 iy:0.334 pau:0.5")
    [(0.119, 'pau'), (0.262, 'hh'), (0.334, 'iy'), (0.5, 'pau')]
    """
    out = []
    for item in printed.split():
        phone, _, end = item.rpartition(":")
        if not phone:
            raise CorpusError(f"the synthesiser printed {item!r}{' for ' + where if where else ''}; expected phone:end")
        out.append((float(end), phone))
    return out


def synthesise(text: str, voice: FliteVoice = FliteVoice("rms")) -> dict:
    """``text`` in one Flite voice: 16 kHz float ``audio`` and ``segments`` (start, end, label) in
    samples that tile it, labels in the corpus's espeak set (pauses at both ends ``h#``)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        printed = run_program([flite_program(), "-voice", voice.voice, "--setf", f"duration_stretch={voice.stretch}",
                               "--setf", f"int_f0_target_mean={voice.f0}", "-psdur", "-t", text, "-o", str(wav)],
                              wav, f"flite on {text!r} ({voice.name})")
        audio = read_wav(wav, voice.name)
    return {"audio": audio, "segments": tile(parse_segments(printed, text), len(audio), f"{text!r} ({voice.name})"),
            "text": text}


def run_program(command: list[str], wav: Path, what: str) -> str:
    """Run a synthesiser that writes ``wav``; its standard output, or a clear error."""
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0 or not wav.exists():
        raise CorpusError(f"{what} failed: {run.stderr.strip() or run.returncode}")
    return run.stdout


def read_wav(wav: Path, what: str) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(wav, dtype="float32")
    if rate != FLITE_SAMPLE_RATE:
        raise CorpusError(f"{what} wrote {rate} Hz audio; expected {FLITE_SAMPLE_RATE}")
    return audio


def tile(ends: list[tuple[float, str]], num_samples: int, where: str) -> list[tuple[int, int, str]]:
    """(end seconds, CMU phone) pairs as segments (start, end, corpus label) in samples that tile
    ``num_samples``: the last ends with the audio, pauses at both ends are ``h#``.

    >>> tile([(0.1, "pau"), (0.2, "hh"), (0.3, "iy"), (0.4, "pau")], 6400, "a test")
    [(0, 1600, 'h#'), (1600, 3200, 'h'), (3200, 4800, 'i:'), (4800, 6400, 'h#')]
    """
    segments, start = [], 0
    for k, (end, phone) in enumerate(ends):
        if phone not in FLITE_TO_ESPEAK:
            raise UnknownPhoneError(f"unknown phone {phone!r} in {where}; add it to "
                                    "asrlib.corpus.flite.FLITE_TO_ESPEAK with the espeak label of its scoring class")
        stop = num_samples if k == len(ends) - 1 else min(round(end * FLITE_SAMPLE_RATE), num_samples)
        label = FLITE_TO_ESPEAK[phone]
        label = "h#" if label == "pau" and k in (0, len(ends) - 1) else label
        if stop > start:
            segments.append((start, stop, label))
            start = stop
    if not segments:
        raise CorpusError(f"no phones for {where}")
    return segments
