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
from fractions import Fraction

import librosa
import numpy as np
import scipy.signal

from asrlib.features import N_MELS, NUM_FEATURES, SAMPLE_RATE, fbank123, vtlp_warp

__all__ = [
    "Augment", "Perturbation", "speed", "scale_times", "pitch", "coloured_noise", "add_noise", "band_limit",
    "equalise", "reverb", "impulse_response", "spec_augment", "normalise_utterance", "vtlp_warp",
]

NYQUIST = SAMPLE_RATE / 2
SPEED_MAX_DENOMINATOR = 100        # speed factors are rounded to a ratio p/q with q <= 100
NOISE_COLOURS = ("white", "pink", "brown")
NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f**exponent
BAND_ORDER = 4                     # Butterworth order, applied twice (zero phase)
BAND_LOW_HZ = (100.0, 400.0)       # Augment draws the lower edge uniformly in this range ...
BAND_HIGH_HZ = (3000.0, 7000.0)    # ... and the upper one in this (telephone: 300-3400 Hz)
EQ_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # one gain per octave
EQ_TAPS = 1025                     # odd: a type I linear-phase FIR, centred (no delay)
REVERB_RT60_S = (0.2, 0.8)         # Augment draws the reverberation time uniformly in this range ...
REVERB_DRR_DB = (0.0, 10.0)        # ... and the direct-to-reverberant ratio in this
SPEC_CHANNELS = N_MELS             # SpecAugment masks mel channels 0..39 of each block of 41
BLOCK = N_MELS + 1                 # static, delta, delta-delta blocks: 40 mel + energy each
_SEED_HIGH = 2**63                 # child generators for the noise and the room are seeded from rng


# --------------------------------------------------------------------------- input checks


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono with shape (N,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise TypeError(
            f"audio must be float samples in [-1, 1], got dtype {audio.dtype} "
            "(16-bit PCM: convert with asrlib.features.pcm_to_float)"
        )
    if audio.size == 0:
        raise ValueError("audio is empty")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return audio


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _check_number(name: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


# --------------------------------------------------------------------------- waveform pieces


def _speed_ratio(factor: float) -> Fraction:
    """New length over old length, ``1 / factor``, as the fraction that resampling uses."""
    _check_number("speed factor", factor, 0.25, 4.0)
    return Fraction(1 / factor).limit_denominator(SPEED_MAX_DENOMINATOR)


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi's speed perturbation: play the audio ``factor`` times faster, tempo and pitch together.

    The audio is resampled from 16 kHz to ``16 kHz / factor`` and read back at 16 kHz, so a tone
    at ``f`` Hz comes out at ``factor * f`` and the length becomes about ``N / factor``. The
    factor is rounded to a ratio ``p / q`` (``q <= 100``, within 1e-4 of it) for
    ``scipy.signal.resample_poly``; :func:`scale_times` uses the same ratio.
    """
    audio = _check_audio(audio)
    ratio = _speed_ratio(factor)
    if ratio == 1:
        return audio.copy()
    out = scipy.signal.resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    return out.astype(audio.dtype)


def _check_times(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = np.asarray(starts), np.asarray(ends)
    if starts.ndim != 1 or starts.shape != ends.shape:
        raise ValueError(f"starts and ends must be 1-D of one length, got shapes {starts.shape} and {ends.shape}")
    if starts.size and not (np.issubdtype(starts.dtype, np.integer) and np.issubdtype(ends.dtype, np.integer)):
        raise TypeError(f"starts and ends are sample indices and must be integers, got {starts.dtype} and {ends.dtype}")
    if np.any(starts < 0) or np.any(starts >= ends):
        raise ValueError("phone boundaries need 0 <= start < end")
    return starts.astype(np.int64), ends.astype(np.int64)


def scale_times(starts: np.ndarray, ends: np.ndarray, factor: float, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Phone boundaries (in samples) of the audio that :func:`speed` returns for ``factor``.

    New sample ``j`` lies at old time ``j * factor``, so a phone ``[start, end)`` covers exactly
    the new samples ``[ceil(start / factor), ceil(end / factor))`` (exact integer arithmetic on
    the ratio :func:`speed` uses); the old length maps to the new one. The map is monotone, so
    phones that tiled the utterance still tile it; a phone that would shrink to nothing keeps
    one sample, and everything is clipped to ``num_samples``.
    """
    starts, ends = _check_times(starts, ends)
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    ratio = _speed_ratio(factor)
    p, q = ratio.numerator, ratio.denominator

    def scale(b):
        return np.minimum(-(-b * p // q), num_samples)  # ceil(b p / q)

    new_starts = np.minimum(scale(starts), num_samples - 1)
    new_ends = np.minimum(np.maximum(scale(ends), new_starts + 1), num_samples)
    return new_starts, new_ends


def pitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` without changing the tempo (``librosa.effects.pitch_shift``:
    a phase-vocoder time stretch, then resampling back to the same length)."""
    audio = _check_audio(audio)
    _check_number("semitones", semitones, -24.0, 24.0)
    if semitones == 0:
        return audio.copy()
    out = librosa.effects.pitch_shift(audio.astype(np.float64), sr=SAMPLE_RATE, n_steps=float(semitones))
    return librosa.util.fix_length(out, size=len(audio)).astype(audio.dtype)


def coloured_noise(num_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of unit power whose power spectrum falls as ``1 / f**k``: k = 0 white,
    1 pink (-3 dB per octave), 2 brown (-6 dB per octave). White noise is shaped in the
    frequency domain (no DC), which neither scipy nor numpy offer ready-made."""
    if colour not in NOISE_EXPONENT:
        raise ValueError(f"unknown noise colour {colour!r}; choose one of {NOISE_COLOURS}")
    _check_rng(rng)
    white = rng.standard_normal(num_samples)
    if colour == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples, d=1 / SAMPLE_RATE)
        gain = np.zeros_like(freqs)
        gain[1:] = freqs[1:] ** (-NOISE_EXPONENT[colour] / 2)
        noise = np.fft.irfft(spectrum * gain, n=num_samples)
    power = _power(noise)
    return noise / math.sqrt(power) if power > 0 else noise


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """Add generated noise so that signal power over noise power, both over the whole clip, is
    ``snr_db``. ``snr_db = inf`` adds nothing; silent audio stays silent (no signal power to
    scale to)."""
    audio = _check_audio(audio)
    if colour not in NOISE_EXPONENT:
        raise ValueError(f"unknown noise colour {colour!r}; choose one of {NOISE_COLOURS}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float, np.integer, np.floating)) or not (
        math.isfinite(snr_db) or snr_db == math.inf
    ):
        raise ValueError(f"snr_db must be a finite number of dB (inf for no noise), got {snr_db!r}")
    _check_rng(rng)
    if snr_db == math.inf:
        return audio.copy()
    noise = coloured_noise(len(audio), colour, rng)
    scale = math.sqrt(_power(audio) / 10 ** (snr_db / 10))
    return (audio.astype(np.float64) + scale * noise).astype(audio.dtype)


def band_limit(audio: np.ndarray, low_hz: float = 0.0, high_hz: float = NYQUIST) -> np.ndarray:
    """Keep ``low_hz`` .. ``high_hz`` (e.g. 300-3400 Hz for a telephone): a Butterworth band-pass
    run forwards and backwards (``scipy.signal.sosfiltfilt``), so no phase shift and no delay
    that would move the phone boundaries. ``low_hz = 0`` is a low-pass, ``high_hz = 8000`` a
    high-pass, both together the identity."""
    audio = _check_audio(audio)
    _check_number("low_hz", low_hz, 0.0, NYQUIST)
    _check_number("high_hz", high_hz, 0.0, NYQUIST)
    if not low_hz < high_hz:
        raise ValueError(f"band_limit needs low_hz < high_hz, got {low_hz} and {high_hz}")
    if low_hz == 0 and high_hz == NYQUIST:
        return audio.copy()
    if low_hz == 0:
        sos = scipy.signal.butter(BAND_ORDER, high_hz, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    elif high_hz == NYQUIST:
        sos = scipy.signal.butter(BAND_ORDER, low_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")
    else:
        sos = scipy.signal.butter(BAND_ORDER, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfiltfilt(sos, audio.astype(np.float64)).astype(audio.dtype)


def equalise(audio: np.ndarray, gains_db) -> np.ndarray:
    """A smooth equaliser: gain ``gains_db[i]`` at :data:`EQ_CENTRES_HZ` ``[i]`` (one per
    octave, 125 Hz .. 8 kHz), straight lines in dB over log frequency in between, flat below
    125 Hz. Built as a linear-phase FIR by ``scipy.signal.firwin2`` and applied centred
    (``fftconvolve(mode="same")``), so nothing is delayed. All gains 0 dB is the identity."""
    audio = _check_audio(audio)
    gains_db = np.asarray(gains_db, dtype=np.float64)
    if gains_db.shape != (len(EQ_CENTRES_HZ),):
        raise ValueError(f"gains_db needs one gain per centre {EQ_CENTRES_HZ}, got shape {gains_db.shape}")
    if not np.isfinite(gains_db).all() or np.abs(gains_db).max() > 40:
        raise ValueError(f"gains_db must be finite and within +-40 dB, got {gains_db.tolist()}")
    if not gains_db.any():
        return audio.copy()
    freqs = np.linspace(0.0, NYQUIST, 257)
    curve_db = np.interp(np.log2(np.maximum(freqs, EQ_CENTRES_HZ[0])), np.log2(EQ_CENTRES_HZ), gains_db)
    taps = scipy.signal.firwin2(EQ_TAPS, freqs, 10 ** (curve_db / 20), fs=SAMPLE_RATE)
    return scipy.signal.fftconvolve(audio.astype(np.float64), taps, mode="same").astype(audio.dtype)


def impulse_response(rt60: float, rng: np.random.Generator, direct_to_reverberant_db: float = 5.0) -> np.ndarray:
    """A simulated room: a unit direct impulse at lag 0, then Gaussian noise whose energy decays
    by 60 dB in ``rt60`` seconds (amplitude ``exp(-3 ln(10) t / rt60)``), ``rt60`` seconds
    long, scaled so that direct energy over tail energy is ``direct_to_reverberant_db``.
    ``rt60 = 0`` is the single impulse (no room)."""
    _check_number("rt60", rt60, 0.0, 5.0)
    _check_number("direct_to_reverberant_db", direct_to_reverberant_db, -40.0, 60.0)
    _check_rng(rng)
    length = max(int(round(rt60 * SAMPLE_RATE)), 1)
    if rt60 == 0:
        return np.ones(1)
    t = np.arange(1, length) / SAMPLE_RATE
    tail = rng.standard_normal(length - 1) * np.exp(-3 * math.log(10) * t / rt60)
    tail *= math.sqrt(10 ** (-direct_to_reverberant_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def reverb(
    audio: np.ndarray, rt60: float, rng: np.random.Generator, direct_to_reverberant_db: float = 5.0
) -> np.ndarray:
    """Convolve with :func:`impulse_response` (``scipy.signal.fftconvolve``), keep the first ``N``
    samples (the direct sound is at lag 0, so nothing moves) and rescale to the input's RMS.
    ``rt60 = 0`` is the identity."""
    audio = _check_audio(audio)
    h = impulse_response(rt60, rng, direct_to_reverberant_db)
    if rt60 == 0:
        return audio.copy()
    wet = scipy.signal.fftconvolve(audio.astype(np.float64), h)[: len(audio)]
    wet_power = _power(wet)
    if wet_power > 0:
        wet *= math.sqrt(_power(audio) / wet_power)
    return wet.astype(audio.dtype)


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
