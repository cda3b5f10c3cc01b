"""Speech with the exact time of every phone, from the espeak-ng synthesiser.

espeak-ng (GPL-3.0+, installed by pip as ``espeakng-loader``; the project does not ship it) is
driven through ctypes. Besides audio, it reports a *phoneme event* at the sample where each
phone starts, which gives the corpus a ground-truth segmentation, TIMIT's ``.PHN`` files for
free.

Determinism. The synthesiser keeps state from one call to the next inside a process (a
repeated call moves boundaries by under a millisecond) and some voices draw random numbers.
Re-initialising does not reset it. So every utterance is synthesised in a fresh ``fork()`` of
an initialised engine, with the random seed set from the utterance: the output is then
identical for any order and any number of worker processes. Where ``fork`` does not exist
(Windows), synthesis runs in-process and is only nearly reproducible.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import warnings
from dataclasses import dataclass

import numpy as np

from asrlib.corpus.store import CorpusError
from asrlib.phones import normalise_espeak

ESPEAK_SAMPLE_RATE = 22_050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_OPTIONS = 0x8001          # espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_DONT_EXIT
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_POS_CHARACTER = 1
_CHARS_AUTO = 0
_SSML_OFF = 0


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),   # union: the phoneme mnemonic for phoneme events
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """How one synthetic speaker sounds: accent, voice variant, speaking rate and pitch."""

    accent: str       # espeak voice name, e.g. "en-us", "en-gb-scotland"
    variant: str      # espeak variant, e.g. "m3", "f2"
    rate: int         # words per minute
    pitch: int        # 0..100, 50 is the voice's default

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


class SynthesisError(RuntimeError):
    """espeak-ng could not synthesise an utterance."""


class _Engine:
    """One initialised espeak-ng engine per process."""

    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _OPTIONS)
        if rate != ESPEAK_SAMPLE_RATE:
            raise SynthesisError(f"espeak-ng initialised at {rate} Hz, expected {ESPEAK_SAMPLE_RATE}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.decode("ascii", "replace")))
            i += 1
        return 0

    def synthesise(self, text: str, voice: Voice, seed: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SynthesisError(f"espeak-ng has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None)
        if status != 0:
            raise SynthesisError(f"espeak_Synth returned {status} for {text!r} with voice {voice.name!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, list(self._events)


_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def synthesise(text: str, voice: Voice, seed: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Synthesise ``text``: int16 audio at 22.05 kHz and the phoneme events ``(sample, symbol)``.

    Runs in a fresh fork of the process's engine (see the module docstring), so the result
    depends on ``(text, voice, seed)`` alone.
    """
    engine = _engine()
    if not hasattr(os, "fork"):
        warnings.warn("os.fork is unavailable: synthesis is nearly, not exactly, reproducible", stacklevel=2)
        return engine.synthesise(text, voice, seed)
    return in_fork(engine.synthesise, text, voice, seed, what=f"the synthesis process for {text!r}")


def in_fork(fn, *args, what: str):
    """``fn(*args)`` run in a fork of this process, its result sent back through a pipe: the child
    starts from the engine as the parent holds it, and whatever the call changes in the engine
    dies with the child. A failure in the child, or its death, is a :class:`SynthesisError`
    naming ``what``. Needs ``os.fork``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run, send the result, and leave without running any clean-up
        os.close(read_fd)
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException as err:  # noqa: BLE001 - any failure goes back to the parent
            payload = pickle.dumps(("error", f"{type(err).__name__}: {err}"))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not payload:
        raise SynthesisError(f"{what} died (wait status {status})")
    kind, result = pickle.loads(payload)
    if kind == "error":
        raise SynthesisError(result)
    return result


def segments(events: list[tuple[int, str]], num_samples: int, where: str) -> list[tuple[int, int, str]]:
    """Phoneme events (start sample, symbol) to segments (start, end, fine label) that tile the
    audio: the span before the first phone is ``h#``, empty phones are dropped, pauses at the
    ends become ``h#`` and neighbouring silences merge."""
    events = sorted(events, key=lambda e: e[0])
    starts = [min(max(s, 0), num_samples) for s, _ in events]
    ends = starts[1:] + [num_samples]
    segs = [(0, starts[0], "h#")] if starts and starts[0] > 0 else []
    segs += [(s, e, normalise_espeak(sym, where)) for (s, e), (_, sym) in zip(zip(starts, ends), events) if e > s]
    if not segs:
        raise CorpusError(f"{where}: the synthesiser produced no phones")
    segs = [(s, e, "h#" if p == "pau" and (i == 0 or i == len(segs) - 1) else p) for i, (s, e, p) in enumerate(segs)]
    merged = [segs[0]]
    for s, e, p in segs[1:]:
        ps, _, pp = merged[-1]
        if p == pp and p in ("h#", "pau"):
            merged[-1] = (ps, e, p)
        else:
            merged.append((s, e, p))
    return merged
