"""Waveform perturbations: the same recording, spoken faster, higher, in a room, over a phone, in noise.

The pieces of :mod:`asrlib.augment` that change the audio itself. Every one takes mono float
audio at 16 kHz, shape ``(N,)``, returns the same dtype, and at zero strength returns a copy of
its input (exactly the same values); all randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

import math
from fractions import Fraction

import librosa
import numpy as np
import scipy.signal

from asrlib.features import SAMPLE_RATE

NYQUIST = SAMPLE_RATE / 2
SPEED_MAX_DENOMINATOR = 100        # speed factors are rounded to a ratio p/q with q <= 100
NOISE_COLOURS = ("white", "pink", "brown")
NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f**exponent
BAND_ORDER = 4                     # Butterworth order, applied twice (zero phase)
EQ_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # one gain per octave
EQ_TAPS = 1025                     # odd: a type I linear-phase FIR, centred (no delay)


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


PITCH_FFT = 512  # the phase vocoder's frame: 32 ms at 16 kHz


def pitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` without changing the tempo (``librosa.effects.pitch_shift``:
    a phase-vocoder time stretch, then resampling back to the same length).

    The phase vocoder's frames are 32 ms (512 samples, hop 8 ms), near the features' 25 ms.
    librosa's default, 2048 samples, is 128 ms at 16 kHz: it smears every plosive and phone
    boundary over a syllable, and training on it wrecked even the synthetic dev split (52% PER
    against 12%, chapter 11's first pitch row)."""
    audio = _check_audio(audio)
    _check_number("semitones", semitones, -24.0, 24.0)
    if semitones == 0:
        return audio.copy()
    out = librosa.effects.pitch_shift(audio.astype(np.float64), sr=SAMPLE_RATE, n_steps=float(semitones),
                                     n_fft=PITCH_FFT, hop_length=PITCH_FFT // 4)
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


