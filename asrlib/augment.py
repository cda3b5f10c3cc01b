"""Data augmentation: the same sentence, spoken and recorded differently.

The book's networks learn from synthetic espeak speech: one clean voice, one "room", one
microphone. Human recordings differ in all three, and the networks fail on them. Each piece
below perturbs one of those differences, on the fly, so that every epoch sees a new version of
every utterance:

===========================  ========================================  ======================
piece                        what it imitates                          reference
===========================  ========================================  ======================
:func:`speed`                faster or slower talkers (tempo + pitch)  Ko et al. 2015 (Kaldi)
:func:`pitch`                higher or lower voices, same tempo
:func:`reverb`               a room: direct sound, decaying echo       Schroeder 1965 (RT60)
:func:`band_limit`           a telephone band
:func:`equalise`             a microphone's colouring
:func:`add_noise`            background noise at a given SNR
``warp`` of ``fbank123``     other vocal-tract lengths (VTLP)          Jaitly & Hinton 2013
:func:`spec_augment`         missing bands and dropped frames          Park et al. 2019
:func:`normalise_utterance`  per-utterance mean and variance (CMVN)
===========================  ========================================  ======================

Every waveform piece takes mono float audio at 16 kHz, shape ``(N,)``, returns the same dtype,
and at zero strength returns a copy of its input (exactly the same values). :class:`Augment`
holds the strengths of all of them, ``Augment()`` being no augmentation at all, and runs the
chain in one fixed order (:meth:`Augment.apply`):

    speed -> pitch -> reverb -> band limit -> equalise -> noise -> features (with VTLP)

then, after the training-set normalisation, :meth:`Augment.apply_features` (SpecAugment). All
randomness comes from the ``rng`` passed in, and :meth:`Augment.draw` always consumes it the
same way whichever pieces are on, so switching one piece on or off changes no other's draws.
Augmented audio is not clipped to [-1, 1]: the log filter bank does not need it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from asrlib.features import N_MELS, NUM_FEATURES, fbank123, vtlp_warp
from asrlib.perturb import (  # noqa: F401 (the waveform pieces, part of this module's interface)
    EQ_CENTRES_HZ, NOISE_COLOURS, NOISE_EXPONENT, _check_audio, _check_count, _check_number, _check_rng,
    _check_times, add_noise, band_limit, coloured_noise, equalise, impulse_response, pitch, reverb, scale_times, speed,
)

__all__ = [
    "Augment", "Perturbation", "speed", "scale_times", "pitch", "coloured_noise", "add_noise", "band_limit",
    "equalise", "reverb", "impulse_response", "spec_augment", "normalise_utterance", "vtlp_warp",
]


BAND_LOW_HZ = (100.0, 400.0)       # Augment draws the lower edge uniformly in this range ...
BAND_HIGH_HZ = (3000.0, 7000.0)    # ... and the upper one in this (telephone: 300-3400 Hz)
REVERB_RT60_S = (0.2, 0.8)         # Augment draws the reverberation time uniformly in this range ...
REVERB_DRR_DB = (0.0, 10.0)        # ... and the direct-to-reverberant ratio in this
SPEC_CHANNELS = N_MELS             # SpecAugment masks mel channels 0..39 of each block of 41
BLOCK = N_MELS + 1                 # static, delta, delta-delta blocks: 40 mel + energy each
_SEED_HIGH = 2**63                 # child generators for the noise and the room are seeded from rng


# --------------------------------------------------------------------------- feature pieces


def spec_augment(
    features: np.ndarray, rng: np.random.Generator, freq_masks: int = 0, max_freq: int = 0,
    time_masks: int = 0, max_time: int = 0, max_time_fraction: float = 1.0,
) -> np.ndarray:
    """SpecAugment's masks (Park et al. 2019, without time warping) on normalised features.

    Each of ``freq_masks`` masks draws a width ``f`` uniformly in ``0..max_freq`` and a first
    channel ``f0`` in ``0..40-f``, and zeroes mel channels ``f0..f0+f-1`` in all three blocks
    (static, delta, delta-delta: columns ``c``, ``41+c``, ``82+c``). The energy columns (40, 81,
    122) are never frequency-masked: energy is the sum over all frequencies, not a band, so no
    band of it goes missing. Each of ``time_masks`` masks zeroes ``t`` whole frames, ``t``
    uniform in ``0..min(max_time, floor(max_time_fraction * T))`` (Park's bound ``p``).
    Zero is the training mean, since the features are normalised.

    features : ndarray, shape (T, 123)  ->  ndarray, shape (T, 123), float32, a new array
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != NUM_FEATURES:
        raise ValueError(f"features must have shape (T, {NUM_FEATURES}), got {features.shape}")
    _check_rng(rng)
    for name, value in zip(("freq_masks", "max_freq", "time_masks", "max_time"), (freq_masks, max_freq, time_masks, max_time)):
        _check_count(name, value)
    if max_freq > SPEC_CHANNELS:
        raise ValueError(f"max_freq must be at most {SPEC_CHANNELS} mel channels, got {max_freq}")
    _check_number("max_time_fraction", max_time_fraction, 0.0, 1.0)
    out = features.astype(np.float32, copy=True)
    for _ in range(freq_masks):
        f = int(rng.integers(0, max_freq + 1))
        f0 = int(rng.integers(0, SPEC_CHANNELS - f + 1))
        for block in range(3):
            out[:, block * BLOCK + f0 : block * BLOCK + f0 + f] = 0.0
    T = len(out)
    widest = min(max_time, int(max_time_fraction * T))
    for _ in range(time_masks):
        t = int(rng.integers(0, widest + 1))
        t0 = int(rng.integers(0, T - t + 1))
        out[t0 : t0 + t] = 0.0
    return out


def normalise_utterance(features: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Cepstral mean and variance normalisation: zero mean and unit variance per dimension over
    this utterance's frames (a dimension that does not vary becomes 0).

    It is invariant to any per-dimension positive affine map ``x -> a x + b`` (``a > 0``): the
    mean absorbs ``b`` and the standard deviation ``a``. So applying it to features already
    normalised with the training-set statistics (:class:`asrlib.features.Normaliser`) gives
    the same result as applying it to the raw features.

    features : ndarray, shape (T, F)  ->  ndarray, shape (T, F), float32
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must have shape (T, F) with T >= 1, got {features.shape}")
    x = features.astype(np.float64)
    centred = x - x.mean(axis=0)
    std = centred.std(axis=0)
    scale = np.where(std > eps * (1.0 + np.abs(x).max(axis=0)), std, np.inf)
    return (centred / scale).astype(np.float32)


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Perturbation:
    """The concrete values :meth:`Augment.draw` picked for one utterance (the defaults: none)."""

    speed: float = 1.0                   # factor, > 1 faster
    semitones: float = 0.0
    rt60: float = 0.0                    # seconds, 0 = no room
    direct_to_reverberant_db: float = 5.0
    reverb_seed: int = 0
    band: tuple[float, float] | None = None  # (low_hz, high_hz) or no band limit
    eq_gains_db: tuple[float, ...] = (0.0,) * len(EQ_CENTRES_HZ)
    snr_db: float = math.inf             # inf = no noise
    colour: str = "white"
    noise_seed: int = 0
    alpha: float = 1.0                   # VTLP warp factor

    def waveform(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
        """speed -> pitch -> reverb -> band limit -> equalise -> noise: the new audio and phone
        boundaries (only speed moves them)."""
        audio = _check_audio(audio)
        starts, ends = _check_times(starts, ends)
        if self.speed != 1.0:
            audio = speed(audio, self.speed)
            starts, ends = scale_times(starts, ends, self.speed, len(audio))
        audio = pitch(audio, self.semitones)
        audio = reverb(audio, self.rt60, np.random.default_rng(self.reverb_seed), self.direct_to_reverberant_db)
        if self.band is not None:
            audio = band_limit(audio, *self.band)
        audio = equalise(audio, self.eq_gains_db)
        audio = add_noise(audio, self.snr_db, np.random.default_rng(self.noise_seed), self.colour)
        return audio, starts, ends

    def features(self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`waveform`, then the 123 raw features with the VTLP warp: ``(T, 123)``, starts, ends."""
        audio, starts, ends = self.waveform(audio, starts, ends)
        return fbank123(audio, warp=self.alpha), starts, ends


@dataclass(frozen=True)
class Augment:
    """How strongly to augment; ``Augment()`` is no augmentation (features equal ``fbank123``).

    speed : factor uniform in [1 - speed, 1 + speed] (Kaldi uses 0.9, 1.0, 1.1)
    pitch : semitones uniform in [-pitch, pitch]
    vtlp : warp factor alpha uniform in [1 - vtlp, 1 + vtlp] (Jaitly & Hinton: 0.1)
    noise_snr : (low, high) dB, SNR uniform in it, or None for no noise; applied with
        probability ``noise_prob``, colour uniform among ``noise_colours``
    band_prob : probability of a band limit, edges uniform in BAND_LOW_HZ and BAND_HIGH_HZ
    eq_db : every octave gain of :func:`equalise` uniform in [-eq_db, eq_db] (0: no EQ)
    reverb_prob : probability of a room, RT60 uniform in REVERB_RT60_S, direct-to-reverberant
        ratio in REVERB_DRR_DB
    freq_masks, max_freq, time_masks, max_time, max_time_fraction : :func:`spec_augment`
    """

    speed: float = 0.0
    pitch: float = 0.0
    vtlp: float = 0.0
    noise_snr: tuple[float, float] | None = None
    noise_prob: float = 1.0
    noise_colours: tuple[str, ...] = NOISE_COLOURS
    band_prob: float = 0.0
    eq_db: float = 0.0
    reverb_prob: float = 0.0
    freq_masks: int = 0
    max_freq: int = 0
    time_masks: int = 0
    max_time: int = 0
    max_time_fraction: float = 0.2

    def __post_init__(self):
        _check_number("speed", self.speed, 0.0, 0.5)
        _check_number("pitch", self.pitch, 0.0, 12.0)
        _check_number("vtlp", self.vtlp, 0.0, 0.5)
        for name in ("noise_prob", "band_prob", "reverb_prob"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        _check_number("eq_db", self.eq_db, 0.0, 20.0)
        _check_number("max_time_fraction", self.max_time_fraction, 0.0, 1.0)
        if self.noise_snr is not None:
            snr = tuple(self.noise_snr)
            if len(snr) != 2:
                raise ValueError(f"noise_snr must be a (low, high) pair in dB or None, got {self.noise_snr!r}")
            _check_number("noise_snr low", snr[0], -20.0, 100.0)
            _check_number("noise_snr high", snr[1], -20.0, 100.0)
            if snr[0] > snr[1]:
                raise ValueError(f"noise_snr range is reversed: ({snr[0]}, {snr[1]}); give (low, high)")
            object.__setattr__(self, "noise_snr", (float(snr[0]), float(snr[1])))
        colours = (self.noise_colours,) if isinstance(self.noise_colours, str) else tuple(self.noise_colours)
        unknown = [c for c in colours if c not in NOISE_EXPONENT]
        if unknown or not colours:
            raise ValueError(f"unknown noise colour(s) {unknown}; choose among {NOISE_COLOURS}")
        object.__setattr__(self, "noise_colours", colours)
        for name in ("freq_masks", "max_freq", "time_masks", "max_time"):
            _check_count(name, getattr(self, name))
        if self.max_freq > SPEC_CHANNELS:
            raise ValueError(f"max_freq must be at most {SPEC_CHANNELS} mel channels, got {self.max_freq}")
        if self.freq_masks and not self.max_freq:
            raise ValueError(f"freq_masks={self.freq_masks} with max_freq=0 masks nothing; set max_freq")
        if self.time_masks and not self.max_time:
            raise ValueError(f"time_masks={self.time_masks} with max_time=0 masks nothing; set max_time")

    def draw(self, rng: np.random.Generator) -> Perturbation:
        """Pick one utterance's perturbation. The rng is consumed identically whatever the
        strengths (the same draws in the same order), so turning one piece on or off changes no
        other piece's values."""
        _check_rng(rng)
        u = rng.random(6)  # speed, pitch, vtlp, reverb coin, rt60, drr
        reverb_seed = int(rng.integers(_SEED_HIGH))
        band_u = rng.random(3)  # coin, low, high
        eq_u = rng.random(len(EQ_CENTRES_HZ))
        noise_u = rng.random(2)  # coin, snr
        colour = self.noise_colours[int(rng.integers(len(self.noise_colours)))]
        noise_seed = int(rng.integers(_SEED_HIGH))

        def between(lo_hi, x):
            return float(lo_hi[0] + (lo_hi[1] - lo_hi[0]) * x)

        room = u[3] < self.reverb_prob
        banded = band_u[0] < self.band_prob
        noisy = self.noise_snr is not None and noise_u[0] < self.noise_prob
        return Perturbation(
            speed=float(1.0 + self.speed * (2 * u[0] - 1)),
            semitones=float(self.pitch * (2 * u[1] - 1)) + 0.0,  # + 0.0: no -0.0
            rt60=between(REVERB_RT60_S, u[4]) if room else 0.0,
            direct_to_reverberant_db=between(REVERB_DRR_DB, u[5]),
            reverb_seed=reverb_seed,
            band=(between(BAND_LOW_HZ, band_u[1]), between(BAND_HIGH_HZ, band_u[2])) if banded else None,
            eq_gains_db=tuple(float(g) + 0.0 for g in self.eq_db * (2 * eq_u - 1)),
            snr_db=between(self.noise_snr, noise_u[1]) if noisy else math.inf,
            colour=colour,
            noise_seed=noise_seed,
            alpha=float(1.0 + self.vtlp * (2 * u[2] - 1)),
        )

    def apply(
        self, audio: np.ndarray, starts: np.ndarray, ends: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One augmented version of an utterance: ``(features (T, 123) before normalisation,
        starts, ends)`` in samples of the (possibly speed-changed) audio. Order: speed, pitch,
        reverb, band limit, equalise, noise, then the features with the VTLP warp."""
        return self.draw(rng).features(audio, starts, ends)

    def apply_features(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment on features already normalised with the training-set statistics."""
        return spec_augment(
            features, rng, self.freq_masks, self.max_freq, self.time_masks, self.max_time, self.max_time_fraction
        )

    @property
    def is_identity(self) -> bool:
        """Every piece off: :meth:`apply` is ``fbank123`` and :meth:`apply_features` a copy."""
        noisy = self.noise_snr is not None and self.noise_prob > 0
        return not (self.speed or self.pitch or self.vtlp or noisy or self.band_prob or self.eq_db
                    or self.reverb_prob or self.freq_masks or self.time_masks)

    def to_dict(self) -> dict:
        """JSON-friendly: tuples become lists."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        d["noise_snr"] = None if self.noise_snr is None else list(self.noise_snr)
        d["noise_colours"] = list(self.noise_colours)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Augment:
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Augment field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def describe(self) -> str:
        """One line for logs and plots, e.g. ``speed ±10%, noise 10-30 dB SNR (p=1)``."""
        parts = []
        if self.speed:
            parts.append(f"speed ±{self.speed:.0%}")
        if self.pitch:
            parts.append(f"pitch ±{self.pitch:g} st")
        if self.reverb_prob:
            parts.append(f"reverb RT60 {REVERB_RT60_S[0]:g}-{REVERB_RT60_S[1]:g} s (p={self.reverb_prob:g})")
        if self.band_prob:
            parts.append(f"band limit (p={self.band_prob:g})")
        if self.eq_db:
            parts.append(f"EQ ±{self.eq_db:g} dB")
        if self.noise_snr is not None and self.noise_prob:
            low, high = self.noise_snr
            parts.append(f"{'/'.join(self.noise_colours)} noise {low:g}-{high:g} dB SNR (p={self.noise_prob:g})")
        if self.vtlp:
            parts.append(f"VTLP alpha {1 - self.vtlp:g}-{1 + self.vtlp:g}")
        if self.freq_masks and self.max_freq:
            parts.append(f"{self.freq_masks}x freq mask <= {self.max_freq}")
        if self.time_masks and self.max_time:
            parts.append(f"{self.time_masks}x time mask <= {self.max_time} frames")
        return ", ".join(parts) if parts else "no augmentation"
