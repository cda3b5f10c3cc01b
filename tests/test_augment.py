"""Augmentation, checked by measuring what each piece claims to do: the SNR, the RT60 (Schroeder's
backward integration), the attenuation of tones, the frequency of a tone after speed and pitch
changes, the mel channel a tone lands in after VTLP."""

import json
import math

import numpy as np
import pytest
import scipy.signal

from asrlib import augment as A
from asrlib import features as F

SR = 16_000


def tone(freq, seconds=0.5, amplitude=0.3, dtype=np.float32):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(dtype)


def peak_hz(x):
    """The strongest frequency, from an FFT zero-padded 16x (resolution 16000 / (16 N) Hz)."""
    n = 16 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=n))
    return np.argmax(spectrum) * SR / n


def rms_db(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


@pytest.fixture
def speech_like():
    """0.5 s of a vowel-like buzz: harmonics of 120 Hz under two formant bumps, plus a little noise."""
    rng = np.random.default_rng(7)
    t = np.arange(SR // 2) / SR
    x = sum(np.exp(-(((k * 120 - 700) / 300) ** 2)) * np.sin(2 * np.pi * k * 120 * t) for k in range(1, 60))
    x = x + sum(0.5 * np.exp(-(((k * 120 - 1800) / 400) ** 2)) * np.sin(2 * np.pi * k * 120 * t) for k in range(1, 60))
    x = x / np.abs(x).max() * 0.4 + 0.003 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def rng(seed=0):
    return np.random.default_rng(seed)


# Every waveform piece at some strength and at zero strength.
PIECES = {
    "pitch": (lambda x, g: A.pitch(x, 3.0), lambda x, g: A.pitch(x, 0.0)),
    "add_noise": (lambda x, g: A.add_noise(x, 10.0, g, "pink"), lambda x, g: A.add_noise(x, math.inf, g)),
    "band_limit": (lambda x, g: A.band_limit(x, 300, 3400), lambda x, g: A.band_limit(x, 0, 8000)),
    "equalise": (lambda x, g: A.equalise(x, [3, -2, 1, 6, -6, 2, 0]), lambda x, g: A.equalise(x, [0] * 7)),
    "reverb": (lambda x, g: A.reverb(x, 0.4, g), lambda x, g: A.reverb(x, 0.0, g)),
}


# ----------------------------------------------------------------------------- shapes, identity, determinism


@pytest.mark.parametrize("name", PIECES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pieces_keep_length_and_dtype(name, dtype, speech_like):
    x = speech_like.astype(dtype)
    out = PIECES[name][0](x, rng())
    assert out.shape == x.shape and out.dtype == dtype and np.isfinite(out).all()
    assert not np.array_equal(out, x)


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.0374])
def test_speed_changes_the_length_by_one_over_the_factor(factor, speech_like):
    out = A.speed(speech_like, factor)
    assert out.dtype == np.float32
    assert abs(len(out) - len(speech_like) / factor) <= 1 + 1e-4 * len(speech_like)


@pytest.mark.parametrize("name", PIECES)
def test_zero_strength_is_the_identity(name, speech_like):
    out = PIECES[name][1](speech_like, rng())
    np.testing.assert_array_equal(out, speech_like)
    assert out.dtype == speech_like.dtype and out is not speech_like
    np.testing.assert_array_equal(A.speed(speech_like, 1.0), speech_like)
    feats = F.fbank123(speech_like)
    np.testing.assert_array_equal(A.spec_augment(feats, rng(), 0, 10, 0, 10), feats)


def test_augment_off_is_fbank123_exactly(speech_like):
    starts, ends = np.array([0, 1200, 5000]), np.array([1200, 5000, 8000])
    feats, s, e = A.Augment().apply(speech_like, starts, ends, rng())
    np.testing.assert_array_equal(feats, F.fbank123(speech_like))
    np.testing.assert_array_equal(s, starts)
    np.testing.assert_array_equal(e, ends)
    normalised = F.Normaliser(feats.mean(0), feats.std(0) + 1)(feats)
    np.testing.assert_array_equal(A.Augment().apply_features(normalised, rng()), normalised)
    assert A.Augment().is_identity and A.Augment(noise_snr=(5, 10), noise_prob=0.0).is_identity
    assert not A.Augment(vtlp=0.1).is_identity


@pytest.mark.parametrize("name", ["add_noise", "reverb"])
def test_random_pieces_depend_only_on_the_seed(name, speech_like):
    piece = PIECES[name][0]
    np.testing.assert_array_equal(piece(speech_like, rng(3)), piece(speech_like, rng(3)))
    assert not np.array_equal(piece(speech_like, rng(3)), piece(speech_like, rng(4)))


FULL = A.Augment(
    speed=0.1, pitch=2.0, vtlp=0.1, noise_snr=(5.0, 20.0), band_prob=0.5, eq_db=6.0, reverb_prob=0.5,
    freq_masks=2, max_freq=8, time_masks=2, max_time=10,
)


def test_the_whole_chain_depends_only_on_the_seed(speech_like):
    starts, ends = np.array([0, 3000]), np.array([3000, 8000])
    a = FULL.apply(speech_like, starts, ends, rng(11))
    b = FULL.apply(speech_like, starts, ends, rng(11))
    c = FULL.apply(speech_like, starts, ends, rng(12))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape[0] != c[0].shape[0] or not np.array_equal(a[0], c[0])
    feats, s, e = a
    assert feats.shape[1] == 123 and feats.dtype == np.float32 and np.isfinite(feats).all()
    # the boundaries belong to the new audio: its frame count follows from its length
    new_length = len(A.speed(speech_like, FULL.draw(rng(11)).speed))
    assert feats.shape[0] == F.num_frames(new_length) and e[-1] == new_length
    masked = FULL.apply_features(feats, rng(5))
    np.testing.assert_array_equal(masked, FULL.apply_features(feats, rng(5)))


def test_the_chain_runs_in_the_documented_order(speech_like):
    p = A.Augment(speed=0.1, pitch=2.0, noise_snr=(5.0, 20.0), band_prob=1.0, eq_db=6.0, reverb_prob=1.0).draw(rng(2))
    starts, ends = np.array([0, 3000]), np.array([3000, 8000])
    by_hand = A.speed(speech_like, p.speed)
    by_hand = A.pitch(by_hand, p.semitones)
    by_hand = A.reverb(by_hand, p.rt60, rng(p.reverb_seed), p.direct_to_reverberant_db)
    by_hand = A.band_limit(by_hand, *p.band)
    by_hand = A.equalise(by_hand, p.eq_gains_db)
    by_hand = A.add_noise(by_hand, p.snr_db, rng(p.noise_seed), p.colour)
    audio, s, e = p.waveform(speech_like, starts, ends)
    np.testing.assert_array_equal(audio, by_hand)
    np.testing.assert_array_equal((s, e), A.scale_times(starts, ends, p.speed, len(by_hand)))


def test_switching_one_piece_on_changes_no_other_draw():
    alone = A.Augment(speed=0.1, vtlp=0.1).draw(rng(9))
    crowded = A.Augment(speed=0.1, vtlp=0.1, pitch=3, noise_snr=(0, 10), reverb_prob=1.0, band_prob=1.0).draw(rng(9))
    assert (alone.speed, alone.alpha) == (crowded.speed, crowded.alpha)
    assert alone.snr_db == math.inf and crowded.snr_db < 10 and crowded.band is not None and crowded.rt60 > 0


# ----------------------------------------------------------------------------- each piece does what it says


@pytest.mark.parametrize("colour", A.NOISE_COLOURS)
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5, 30.0])
def test_noise_is_added_at_the_requested_snr(colour, snr_db, speech_like):
    noisy = A.add_noise(speech_like, snr_db, rng(1), colour)
    noise = noisy.astype(np.float64) - speech_like
    assert abs(rms_db(speech_like) - rms_db(noise) - snr_db) < 0.1


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colour_is_its_spectral_slope(colour, slope):
    freqs, psd = scipy.signal.welch(A.coloured_noise(SR, colour, rng(2)), fs=SR, nperseg=1024)
    band = (freqs >= 100) & (freqs <= 4000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
    assert abs(fitted - slope) < 0.15


@pytest.mark.parametrize("rt60", [0.25, 0.6])
@pytest.mark.parametrize("drr_db", [0.0, 8.0])
def test_impulse_response_has_the_requested_rt60_and_drr(rt60, drr_db):
    h = A.impulse_response(rt60, rng(4), direct_to_reverberant_db=drr_db)
    tail = h[1:]
    # Schroeder: energy still to come, in dB; T20 = time from -5 dB to -25 dB, times 3
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
    t = np.arange(1, len(h)) / SR
    fit = (decay <= -5) & (decay >= -25)
    slope = np.polyfit(t[fit], decay[fit], 1)[0]  # dB per second
    assert abs(-60 / slope - rt60) < 0.2 * rt60
    assert abs(10 * np.log10(h[0] ** 2 / np.sum(tail**2)) - drr_db) < 0.01


def test_reverb_keeps_the_level_and_the_timing():
    click = np.zeros(8000, np.float32)
    click[1000] = 0.5
    wet = A.reverb(click, 0.3, rng(5))
    assert abs(rms_db(wet) - rms_db(click)) < 0.01
    assert np.abs(wet[:1000]).max() < 1e-9 and np.argmax(np.abs(wet)) == 1000  # direct sound first, on time


@pytest.mark.parametrize("freq, passes", [(100, False), (1000, True), (2500, True), (6000, False)])
def test_band_limit_passes_the_band_and_stops_the_rest(freq, passes):
    x = tone(freq)
    y = A.band_limit(x, 300, 3400)
    gain_db = rms_db(y[2000:-2000]) - rms_db(x[2000:-2000])
    assert (abs(gain_db) < 1.0) if passes else (gain_db < -20)


@pytest.mark.parametrize("piece", [lambda x: A.band_limit(x, 300, 3400), lambda x: A.equalise(x, [6, 0, -6, 3, 0, -3, 6])])
def test_filters_are_zero_phase_so_nothing_moves(piece):
    # a zero-phase filter's impulse response is symmetric about the impulse
    click = np.zeros(8001, np.float32)
    click[4000] = 1.0
    y = piece(click).astype(np.float64)
    np.testing.assert_allclose(y[4000 - 1000 : 4000], y[4001 : 4001 + 1000][::-1], atol=1e-6)
    assert np.argmax(np.abs(y)) == 4000


def test_equaliser_applies_its_gains_at_the_centres_and_between():
    gains = [0, 0, 0, 6, -6, 0, 0]  # +6 dB at 1 kHz, -6 dB at 2 kHz
    for freq, expected in [(1000, 6.0), (2000, -6.0), (1000 * 2**0.5, 0.0), (250, 0.0)]:
        x = tone(freq)
        y = A.equalise(x, gains)
        assert abs(rms_db(y[1000:-1000]) - rms_db(x[1000:-1000]) - expected) < 0.5, freq


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_scales_a_tones_frequency_by_the_factor(factor):
    out = A.speed(tone(1000.0, seconds=1.0), factor)
    assert abs(peak_hz(out) - 1000 * factor) < 0.002 * 1000 * factor


def test_pitch_shift_by_an_octave_doubles_the_frequency_and_keeps_the_tempo():
    x = tone(440.0, seconds=1.0)
    up = A.pitch(x, 12.0)
    assert len(up) == len(x)
    assert abs(peak_hz(up[2000:-2000]) - 880) < 0.01 * 880
    assert abs(peak_hz(A.pitch(x, -12.0)[2000:-2000]) - 220) < 0.01 * 220


@pytest.mark.parametrize("semitones", [2.0, -2.0])
def test_pitch_shift_keeps_a_burst_in_place(semitones):
    # a 10 ms noise burst early, in the middle and at the end of 3 s: its energy centre moves by
    # under 8 ms (librosa's default 128 ms phase-vocoder frame moved it by up to 38 ms)
    gen, n = np.random.default_rng(0), 48_000
    for start in (4000, 24_000, 47_000):
        x = np.zeros(n, np.float32)
        x[start:start + 160] = 0.3 * gen.standard_normal(160)
        energy = A.pitch(x, semitones).astype(np.float64) ** 2
        centre = (np.arange(n) * energy).sum() / energy.sum()
        assert abs(centre - (start + 80)) < 8 * 16, (start, (centre - start - 80) / 16)


@pytest.mark.parametrize("factor", [0.9, 1.13])
def test_scale_times_follows_the_audio(factor):
    # clicks at the boundaries: after speed() each click sits where scale_times puts its boundary
    boundaries = np.array([0, 1234, 2000, 5555, 7001, 8000])
    starts, ends = boundaries[:-1], boundaries[1:]
    audio = np.zeros(8000, np.float32)
    audio[boundaries[1:-1]] = 1.0
    fast = A.speed(audio, factor)
    new_starts, new_ends = A.scale_times(starts, ends, factor, len(fast))
    assert new_starts[0] == 0 and new_ends[-1] == len(fast)
    assert np.all(new_starts < new_ends) and np.all(np.diff(new_starts) > 0)
    np.testing.assert_array_equal(new_starts[1:], new_ends[:-1])  # still tiles the utterance
    for b in new_starts[1:]:
        window = np.abs(fast[b - 20 : b + 21])
        assert abs(int(np.argmax(window)) - 20) <= 1


@pytest.mark.parametrize("factor, old_per_new", [(0.9, (9, 10)), (1.25, (5, 4))])
def test_scale_times_matches_a_brute_force_assignment(factor, old_per_new):
    # new sample j lies at old time j * factor (exact here: 9/10 and 5/4 are the ratios speed() uses);
    # it belongs to the old phone whose [start, end) contains that time
    starts, ends = np.array([0, 7, 33, 34, 90]), np.array([7, 33, 34, 90, 157])
    n = len(A.speed(np.zeros(157, np.float32), factor))
    new_starts, new_ends = A.scale_times(starts, ends, factor, n)
    num, den = old_per_new
    for j in range(n):
        phone = int(np.searchsorted(ends * den, j * num, side="right"))  # first phone with end > j * factor
        assert new_starts[phone] <= j < new_ends[phone], j


def test_scale_times_keeps_short_phones_and_stays_inside():
    s, e = A.scale_times(np.array([0, 1, 2]), np.array([1, 2, 3]), 1.4, 3)
    assert np.all(s < e) and np.all(e <= 3) and np.all(s >= 0) and np.all(np.diff(s) >= 0)


# ----------------------------------------------------------------------------- VTLP


def test_vtlp_warp_is_the_papers_piecewise_line():
    f = np.linspace(0, 8000, 1001)
    for alpha in (0.9, 1.1):
        w = F.vtlp_warp(f, alpha)
        f0 = 4800 * min(alpha, 1) / alpha
        np.testing.assert_allclose(w[f <= f0], alpha * f[f <= f0])
        assert w[0] == 0 and w[-1] == pytest.approx(8000) and np.all(np.diff(w) > 0)
        np.testing.assert_allclose(F.vtlp_warp([f0], alpha), alpha * f0)  # continuous at the boundary
    np.testing.assert_array_equal(F.vtlp_warp(f, 1.0), f)


def test_vtlp_filters_equal_librosas_without_a_warp(speech_like):
    # warp=1.0 keeps librosa's own basis bit for bit (cached corpus features stay valid), and the
    # hand-built warped filters at a vanishing warp agree with it
    librosa_basis = F.librosa.filters.mel(sr=SR, n_fft=F.N_FFT, n_mels=F.N_MELS, fmin=0.0, fmax=8000)
    power = np.abs(F.librosa.stft(speech_like, n_fft=512, hop_length=160, win_length=400, window="hamming",
                                  pad_mode="constant")) ** 2
    np.testing.assert_array_equal(F.filterbank(speech_like, warp=1.0)[:, :40],
                                  np.log(librosa_basis @ power + F.LOG_FLOOR).T.astype(np.float32))
    np.testing.assert_array_equal(F.fbank123(speech_like, warp=1.0), F.fbank123(speech_like))
    np.testing.assert_allclose(F.fbank123(speech_like, warp=1 + 1e-9), F.fbank123(speech_like), atol=1e-3)


def peak_channel(audio, warp=1.0):
    return int(np.argmax(F.filterbank(audio, warp=warp)[:, : F.N_MELS].mean(axis=0)))


@pytest.mark.parametrize("alpha", [0.85, 0.92, 1.08, 1.15])
def test_vtlp_moves_a_tone_to_the_channel_of_the_warped_frequency(alpha):
    x = tone(1000.0)
    moved = peak_channel(x, warp=alpha)
    assert (moved > peak_channel(x)) if alpha > 1 else (moved < peak_channel(x))
    assert moved == peak_channel(tone(float(F.vtlp_warp(1000.0, alpha))))


# ----------------------------------------------------------------------------- SpecAugment, CMVN


def test_spec_augment_masks_the_same_channels_in_all_three_blocks():
    feats = rng(6).normal(3.0, 1.0, size=(30, 123)).astype(np.float32) + 10  # no zeros anywhere
    seen_freq, seen_time = False, False
    for seed in range(30):
        out = A.spec_augment(feats, rng(seed), freq_masks=2, max_freq=8, time_masks=2, max_time=50, max_time_fraction=0.2)
        zero_rows = np.all(out == 0, axis=1)
        assert zero_rows.sum() <= 2 * int(0.2 * 30)  # max_time is capped at 20% of T = 6 frames
        kept = out[~zero_rows]
        np.testing.assert_array_equal(kept[kept != 0], feats[~zero_rows][kept != 0])
        zero_cols = np.all(kept == 0, axis=0)
        assert np.array_equal(zero_cols, np.any(kept == 0, axis=0))  # a masked channel is masked in every frame
        mel = zero_cols.reshape(3, 41)
        assert not mel[:, 40].any()  # energy is never frequency-masked
        assert np.array_equal(mel[0], mel[1]) and np.array_equal(mel[0], mel[2])
        runs = np.flatnonzero(np.diff(np.concatenate([[0], mel[0].astype(int), [0]])) == 1)
        assert len(runs) <= 2 and mel[0].sum() <= 16
        seen_freq |= mel[0].any()
        seen_time |= zero_rows.any()
    assert seen_freq and seen_time


def test_cmvn_is_invariant_to_positive_affine_maps_per_dimension():
    g = rng(8)
    x = g.normal(size=(80, 123)) * g.uniform(0.1, 5, 123) + g.normal(0, 20, 123)
    a, b = g.uniform(0.01, 100, 123), g.normal(0, 1000, 123)
    ref = A.normalise_utterance(x)
    np.testing.assert_allclose(ref.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ref.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(A.normalise_utterance(a * x + b), ref, atol=1e-4)
    training = F.Normaliser.fit([g.normal(5, 3, size=(200, 123))])
    np.testing.assert_allclose(A.normalise_utterance(training(x.astype(np.float32))), ref, atol=1e-4)
    constant = np.ones((5, 3))
    np.testing.assert_array_equal(A.normalise_utterance(constant), 0)


# ----------------------------------------------------------------------------- settings and errors


def test_settings_round_trip_through_json_and_describe_themselves():
    again = A.Augment.from_dict(json.loads(json.dumps(FULL.to_dict())))
    assert again == FULL
    assert A.Augment().describe() == "no augmentation"
    assert "speed ±10%" in FULL.describe() and "5-20 dB SNR" in FULL.describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"speed": -0.1}, r"speed must be in \[0.0, 0.5\]"),
        ({"noise_snr": (20, 5)}, "noise_snr range is reversed"),
        ({"noise_colours": ("white", "purple")}, "unknown noise colour"),
        ({"reverb_prob": 1.5}, r"reverb_prob must be in \[0.0, 1.0\]"),
        ({"max_freq": 41, "freq_masks": 1}, "max_freq must be at most 40"),
        ({"freq_masks": 2}, "masks nothing"),
        ({"time_masks": -1}, "non-negative integer"),
        ({"vtlp": float("nan")}, "vtlp must be in"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        A.Augment(**kwargs)


def test_bad_settings_from_a_dict_name_the_unknown_field():
    with pytest.raises(ValueError, match=r"unknown Augment field\(s\) \['sped'\]"):
        A.Augment.from_dict({"sped": 0.1})


def test_bad_input_is_a_clear_error():
    g = rng()
    with pytest.raises(ValueError, match=r"mono with shape \(N,\)"):
        A.add_noise(np.zeros((2, 100), np.float32), 10, g)
    with pytest.raises(ValueError, match="empty"):
        A.reverb(np.zeros(0, np.float32), 0.3, g)
    with pytest.raises(ValueError, match="NaN"):
        A.pitch(np.full(100, np.nan, np.float32), 2)
    with pytest.raises(TypeError, match="pcm_to_float"):
        A.speed(np.zeros(100, np.int16), 1.1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        A.add_noise(np.ones(100, np.float32), 10, 42)
    with pytest.raises(ValueError, match="unknown noise colour"):
        A.add_noise(np.ones(100, np.float32), 10, g, colour="blue")
    with pytest.raises(ValueError, match="low_hz < high_hz"):
        A.band_limit(np.ones(100, np.float32), 3000, 300)
    with pytest.raises(ValueError, match="one gain per centre"):
        A.equalise(np.ones(100, np.float32), [1, 2])
    with pytest.raises(ValueError, match=r"shape \(T, 123\)"):
        A.spec_augment(np.zeros((5, 40)), g, 1, 2)
    with pytest.raises(ValueError, match="start < end"):
        A.scale_times(np.array([0, 5]), np.array([5, 5]), 1.1, 100)
    with pytest.raises(ValueError, match="warp must be a positive"):
        F.fbank123(np.ones(100, np.float32), warp=0.0)
