"""Speech from Festival's voices made from people: its diphone voice ``ked`` and its MBROLA voices,
with their phones and their end times.

Festival (the University of Edinburgh's synthesiser, the Debian/Ubuntu packages ``festival`` and
``festvox-kdlpc16k``) joins diphones cut from one US man's recorded speech: one more man's voice
made from recordings, a second diphone voice beside Flite's kal16 (:mod:`asrlib.corpus.flite`) with
Festival's own text analysis and prosody. Festival also drives the MBROLA synthesiser's US English
diphone voices (``festvox-us1``, ``festvox-us2``, ``festvox-us3``: Debian's *contrib* and *non-free*
sections): ``us1`` a woman, ``us2`` and ``us3`` two men, recorded by other people, with the same
lexicon and phones. Their licence allows their use for synthesising speech with the MBROLA program
and no sale; the book uses them only to make training sentences on the reader's machine and ships
neither the voices nor their audio. A small Scheme script per sentence synthesises it, writes the
waveform and prints every segment as ``phone:end_seconds``. The phones are CMU's US English set,
written as the corpus's espeak labels through :data:`asrlib.corpus.flite.FLITE_TO_ESPEAK`. One
convention is Festival's own: its lexicon writes an r-coloured vowel as ``er r`` (*bird* is b er r
d), where CMUdict and the human references have ``er``; :func:`merge_er_r` makes the pair one ``er``.
Deterministic.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from asrlib.corpus.flite import parse_segments, read_wav, run_program, tile
from asrlib.corpus.store import CorpusError

class Installed(NamedTuple):
    """How a voice is found: Festival's name for it (its Scheme function is ``voice_<name>``), its
    Debian package, and the speaker's sex."""

    name: str
    package: str
    sex: str


# Festival's kal voice (festvox-kallpc16k) is left out: Flite's kal16 is that man; so is MBROLA's en1, whose lexicon
# and phones are British
VOICES = {"ked": Installed("ked_diphone", "festvox-kdlpc16k", "m"), "us1": Installed("us1_mbrola", "festvox-us1", "f"),
          "us2": Installed("us2_mbrola", "festvox-us2", "m"), "us3": Installed("us3_mbrola", "festvox-us3", "m")}


@dataclass(frozen=True)
class FestivalVoice:
    """A speaker of the Festival voice family: a voice of :data:`VOICES` at a speaking rate
    (``stretch`` > 1 is slower)."""

    voice: str = "ked"
    stretch: float = 1.0

    def __post_init__(self):
        if self.voice not in VOICES:
            raise ValueError(f"unknown festival voice {self.voice!r}; expected one of {tuple(VOICES)}")

    @property
    def name(self) -> str:
        return f"festival-{self.voice} x{1 / self.stretch:.2f}"


@lru_cache(maxsize=None)
def festival_program(voice: str = "ked") -> str:
    """The path of the ``festival`` program that loads ``voice``, or a clear error saying how to
    install it."""
    path = shutil.which("festival")
    installed = VOICES[voice]
    # festival exits 255 on a voice it cannot load
    if path is None or subprocess.run([path, "--batch", f"(voice_{installed.name})"], capture_output=True).returncode:
        raise CorpusError(f"the Festival voice {voice!r} needs the festival program and the voice: 'apt-get install "
                          f"festival {installed.package}' (Debian, Ubuntu, Colab"
                          f"{'; MBROLA voices are in Debian contrib/non-free, Ubuntu multiverse' if 'mbrola' in installed.name else ''}"
                          "); `make test` installs them where it can")
    return path


def merge_er_r(ends: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Festival's ``er r`` as one ``er`` that lasts until the ``r`` ends.

    >>> merge_er_r([(0.1, "b"), (0.2, "er"), (0.25, "r"), (0.3, "d"), (0.4, "r")])
    [(0.1, 'b'), (0.25, 'er'), (0.3, 'd'), (0.4, 'r')]
    """
    out, k = [], 0
    while k < len(ends):
        if ends[k][1] == "er" and k + 1 < len(ends) and ends[k + 1][1] == "r":
            out.append((ends[k + 1][0], "er"))
            k += 2
        else:
            out.append(ends[k])
            k += 1
    return out


def script(text: str, voice: FestivalVoice, wav: Path) -> str:
    """The Scheme that synthesises ``text`` into ``wav`` and prints its segments."""
    quoted = text.replace("\\", " ").replace('"', " ")
    return (f"(voice_{VOICES[voice.voice].name})\n(Parameter.set 'Duration_Stretch {voice.stretch})\n"
            f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n(utt.save.wave utt "{wav}" \'riff)\n'
            '(mapcar (lambda (s) (format t "%s:%f " (item.name s) (item.feat s "end"))) '
            "(utt.relation.items utt 'Segment))\n")


def synthesise(text: str, voice: FestivalVoice = FestivalVoice()) -> dict:
    """``text`` in one Festival voice: 16 kHz float ``audio`` and ``segments`` (start, end, label)
    in samples that tile it, labels in the corpus's espeak set (pauses at both ends ``h#``)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, scheme = Path(tmp) / "out.wav", Path(tmp) / "say.scm"
        scheme.write_text(script(text, voice, wav))
        printed = run_program([festival_program(voice.voice), "--batch", str(scheme)], wav, f"festival on {text!r} ({voice.name})")
        audio = read_wav(wav, voice.name)
    ends = merge_er_r(parse_segments(printed, text))
    return {"audio": audio, "segments": tile(ends, len(audio), f"{text!r} ({voice.name})"), "text": text}
