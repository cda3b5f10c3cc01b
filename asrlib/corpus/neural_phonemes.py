"""Text to the neural voice's input and its durations back to phones (:mod:`asrlib.corpus.neural`).

Piper's voices read espeak-ng's IPA; the corpus labels phones with espeak-ng's mnemonics. This
module asks espeak-ng for both, phoneme by phoneme, so that they pair one to one
(:func:`phonemise`), writes the model's input ids as Piper's own phonemiser does and remembers
which phoneme owns each id (:func:`piece_ids`), and turns the model's per-id durations into
labelled segments that tile the audio (:func:`group_durations`, a pure function).
"""

from __future__ import annotations

import ctypes
import os
import unicodedata
from dataclasses import dataclass
from typing import Sequence

ESPEAK_VOICE = "en-us"      # the voice config's espeak.voice; checked against the config on load

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
SILENCE = ("h#", "pau")


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
    """Run ``fn(*args)`` in a fork (:func:`asrlib.corpus.synth.in_fork`), as the corpus's synthesis
    does: TextToPhonemes changes the engine's state, and the corpus's determinism relies on a
    parent engine that never ran. Without fork (Windows) it runs here."""
    from asrlib.corpus.synth import in_fork

    if not hasattr(os, "fork"):
        return fn(*args)
    return in_fork(fn, *args, what="the phonemiser process")


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
        if merged and s[2] in SILENCE and merged[-1][2] in SILENCE:
            merged[-1][1] = s[1]
        else:
            merged.append(s)
    for i, s in enumerate(merged):
        if s[2] in SILENCE:
            s[2] = "h#" if i in (0, len(merged) - 1) else "pau"
    return [tuple(s) for s in merged]




def join_sentences(parts: Sequence[tuple]) -> tuple:
    """Sentences synthesised one by one, ``[(audio, segments in samples), ...]``, joined: the
    audio concatenated, the segments shifted, and the silences where two sentences meet (the
    end of one and the start of the next) merged into one ``pau``; a silence at either end of
    the whole is ``h#``.

    >>> import numpy as np
    >>> join_sentences([(np.zeros(6), [(0, 2, "h#"), (2, 5, "s"), (5, 6, "h#")]), (np.zeros(4), [(0, 1, "h#"), (1, 4, "t")])])[1]
    [(0, 2, 'h#'), (2, 5, 's'), (5, 7, 'pau'), (7, 10, 't')]
    """
    import numpy as np

    merged: list[list] = []
    offset = 0
    for audio, segments in parts:
        for s, e, lab in segments:
            if merged and lab in SILENCE and merged[-1][2] in SILENCE:
                merged[-1][1] = offset + e
            else:
                merged.append([offset + s, offset + e, lab])
        offset += len(audio)
    for i, m in enumerate(merged):
        if m[2] in SILENCE:
            m[2] = "h#" if i in (0, len(merged) - 1) else "pau"
    return np.concatenate([a for a, _ in parts]), [tuple(m) for m in merged]
