"""Phone sets: the labels a network is trained on, and the 39 classes it is scored on.

The paper trains on TIMIT's 61 phone labels and scores after folding them onto 39 classes
(Lee & Hon 1989): closures and pauses become ``sil``, the glottal stop ``q`` is deleted, and
allophones merge (``ix`` into ``ih``, ``zh`` into ``sh``, ...).

The book's synthetic corpus has its own fine label set, the analogue of TIMIT's 61: the
phoneme symbols of the espeak-ng synthesiser (stress marks stripped), for every accent the
corpus uses, plus ``h#`` for the silence at both ends of an utterance and ``pau`` for pauses.
Each folds onto the same 39 classes, so results on both corpora are scored alike. A symbol that
no table knows is an error that names it: a label is never dropped silently.

Index convention (as ``torch.nn.functional.ctc_loss`` with ``blank=0``): index 0 is the CTC
blank, phones are 1..K, so a network has ``V = K + 1`` outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BLANK = 0

# The 61 labels of TIMIT's phonetic transcriptions (.PHN files).
TIMIT61 = (
    "aa", "ae", "ah", "ao", "aw", "ax", "ax-h", "axr", "ay", "b", "bcl", "ch", "d", "dcl", "dh",
    "dx", "eh", "el", "em", "en", "eng", "epi", "er", "ey", "f", "g", "gcl", "h#", "hh", "hv",
    "ih", "ix", "iy", "jh", "k", "kcl", "l", "m", "n", "ng", "nx", "ow", "oy", "p", "pau", "pcl",
    "q", "r", "s", "sh", "t", "tcl", "th", "uh", "uw", "ux", "v", "w", "y", "z", "zh",
)

# Lee & Hon (1989) folding of the 61 labels onto 39 scoring classes; None: deleted.
_TIMIT_MERGES = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l",
    "em": "m", "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    "pcl": "sil", "tcl": "sil", "kcl": "sil", "bcl": "sil", "dcl": "sil", "gcl": "sil",
    "h#": "sil", "pau": "sil", "epi": "sil", "q": None,
}
TIMIT_TO_39: dict[str, str | None] = {p: _TIMIT_MERGES.get(p, p) for p in TIMIT61}

SCORING39 = tuple(sorted({c for c in TIMIT_TO_39.values() if c is not None}))

# ARPAbet as CMUdict and pocketsphinx write it (stress digits removed; SIL for silence): the
# reference phones of the human recordings (asrlib.realspeech). One segment per stop, as in
# the espeak labels (TIMIT splits a stop into closure and burst).
ARPABET_TO_39: dict[str, str | None] = {
    **{p: p.lower() for p in (
        "AA AE AH AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z"
    ).split()},
    "AO": "aa", "ZH": "sh", "SIL": "sil",
}

# espeak-ng (1.52, the espeakng-loader wheel) phoneme mnemonics, stress marks stripped, as
# produced for the accents of asrlib.corpus.ACCENTS; the comment gives an example word.
ESPEAK_TO_39: dict[str, str | None] = {
    # vowels and diphthongs
    "a": "ae",      # trap
    "aa": "ae",     # bath (US /ae/)
    "a#": "ah",     # reduced a, about
    "A:": "aa",     # palm
    "A@": "aa",     # car, r-coloured
    "0": "aa",      # lot
    "O:": "aa",     # thought (TIMIT ao folds into aa)
    "O2": "aa",     # dog (US)
    "O@": "aa",     # north, r-coloured
    "o@": "aa",     # more, force
    "V": "ah",      # strut
    "VR": "er",     # Scottish r-coloured strut, word
    "@": "ah",      # schwa
    "@2": "ah",     # schwa of 'the' before a consonant
    "3": "er",      # letter
    "3:": "er",     # nurse
    "IR": "er",     # Scottish r-coloured kit, bird
    "E": "eh",      # dress
    "e@": "eh",     # square, hair
    "eI": "ey",     # face
    "I": "ih",      # kit
    "I#": "ih",     # reduced i, roses (TIMIT ix)
    "I2": "ih",     # unstressed kit
    "i": "iy",      # happy
    "i:": "iy",     # fleece
    "i@3": "ih",    # near, here
    "U": "uh",      # foot
    "U@": "uh",     # cure, tour
    "u:": "uw",     # goose
    "oU": "ow",     # goat
    "OI": "oy",     # choice
    "aI": "ay",     # price
    "aI2": "ay",    # Scottish price
    "aI3": "ay",    # fire
    "aI@": "ay",    # fire (British)
    "aU": "aw",     # mouth
    # consonants
    "b": "b", "d": "d", "g": "g", "p": "p", "t": "t", "k": "k",
    "t#": "dx",     # flap, butter (US)
    "t2": "t",      # unreleased t
    "t[": "t",      # dental t for th (Caribbean th-stopping)
    "f": "f", "v": "v", "s": "s", "z": "z", "h": "hh",
    "T": "th", "D": "dh", "S": "sh", "Z": "sh",
    "tS": "ch", "dZ": "jh",
    "m": "m", "n": "n", "N": "ng",
    "l": "l", "@L": "l",   # syllabic l, bottle (TIMIT el)
    "r": "r", "r-": "r",   # linking r
    "w": "w", "w#": "w",   # Scottish voiceless w, which
    "j": "y",
    # silence and glottal events
    ";": None,      # glottal onset between vowels, the apple (TIMIT q: deleted in scoring)
    "_!": None,     # short glottal pause
    "pau": "sil",   # pauses: espeak's _, _: and _|
    "h#": "sil",    # silence at both ends of an utterance
}

_ESPEAK_PAUSES = frozenset({"_", "_:", "_|"})

# Symbols espeak-ng emits for everyday English but never for the corpus's sentences, each heard as
# one of the labels above: spelling them so keeps the label set (and every trained network's
# outputs) as they are, and lets any sentence be spoken (asrlib.corpus.speak).
ESPEAK_ALIASES: dict[str, str] = {
    "@-": "@",      # a schwa espeak may drop, average, camera
    "@5": "@",      # schwa of 'to' before a consonant (RP)
    "i@": "@",      # the unstressed i-schwa of area, audience, billion: the schwa is what stays when spoken fast
    "n-": "n",      # syllabic n, button (TIMIT en folds to n)
    "?": ";",       # glottal stop for t, button (US); TIMIT q, deleted in scoring like the glottal onset
    "O": "O:",      # short thought vowel, Utah, Korea
}


class UnknownPhoneError(ValueError):
    """A phone symbol that the phone set does not contain."""


def normalise_espeak(symbol: str, where: str = "") -> str:
    """An espeak-ng phoneme event's mnemonic as a fine label: stress marks stripped, pauses
    unified to ``pau``, the rarer symbols of :data:`ESPEAK_ALIASES` spelled as the label they sound like.

    Raises
    ------
    UnknownPhoneError
        If the symbol is not in :data:`ESPEAK_TO_39` (naming it, and ``where`` it was found).
    """
    bare = symbol.lstrip("',")
    bare = ESPEAK_ALIASES.get(bare, bare)
    if bare in _ESPEAK_PAUSES:
        return "pau"
    if bare not in ESPEAK_TO_39:
        raise UnknownPhoneError(
            f"unknown espeak phone symbol {symbol!r}{' in ' + where if where else ''}; "
            "add it to asrlib.phones.ESPEAK_TO_39 with its scoring class"
        )
    return bare


class PhoneSet:
    """A fine label set, its indices, and its folding onto the 39 scoring classes.

    Parameters
    ----------
    name : str
        ``"timit"`` (61 labels), ``"espeak"`` (the synthetic corpus's labels) or ``"arpabet"``
        (CMUdict's phones, the references of the human recordings).

    Examples
    --------
    >>> timit = PhoneSet("timit")
    >>> timit.num_classes  # K + 1 with the blank
    62
    >>> timit.fold(["h#", "ix", "q", "zh", "pau"])
    ['sil', 'ih', 'sh', 'sil']
    """

    TABLES = {"timit": TIMIT_TO_39, "espeak": ESPEAK_TO_39, "arpabet": ARPABET_TO_39}

    def __init__(self, name: str):
        if name not in self.TABLES:
            raise ValueError(f"unknown phone set {name!r}; expected one of {sorted(self.TABLES)}")
        self.name = name
        self.to39 = self.TABLES[name]
        self.symbols: tuple[str, ...] = tuple(self.to39)
        self._index = {s: i + 1 for i, s in enumerate(self.symbols)}  # 0 is the blank

    def __repr__(self) -> str:
        return f"PhoneSet({self.name!r}, K={len(self)})"

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def num_classes(self) -> int:
        """V = K + 1: the network's outputs, blank included."""
        return len(self.symbols) + 1

    def _check(self, symbol: str, where: str) -> None:
        if symbol not in self._index:
            raise UnknownPhoneError(
                f"unknown phone {symbol!r} for the {self.name} phone set{' in ' + where if where else ''}"
            )

    def encode(self, symbols: Iterable[str], where: str = "") -> list[int]:
        """Fine labels to indices 1..K."""
        out = []
        for s in symbols:
            self._check(s, where)
            out.append(self._index[s])
        return out

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices 1..K to fine labels (blanks, index 0, are skipped)."""
        out = []
        for i in indices:
            i = int(i)
            if i == BLANK:
                continue
            if not 1 <= i <= len(self.symbols):
                raise ValueError(f"phone index {i} out of range 1..{len(self.symbols)} for {self!r}")
            out.append(self.symbols[i - 1])
        return out

    def fold(self, symbols: Sequence[str], where: str = "") -> list[str]:
        """Fine labels to the 39 scoring classes; deleted labels (``q``) are dropped."""
        out = []
        for s in symbols:
            self._check(s, where)
            c = self.to39[s]
            if c is not None:
                out.append(c)
        return out

    def fold_table(self) -> list[int]:
        """For every index 0..K, the index of its scoring class in :data:`SCORING39`
        (-1 for the blank and for deleted labels): fold predictions in one gather."""
        return [-1] + [SCORING39.index(c) if c is not None else -1 for c in (self.to39[s] for s in self.symbols)]

    def fold_indices(self, indices: Iterable[int]) -> list[str]:
        """Indices (blanks skipped) straight to the 39 scoring classes."""
        return self.fold(self.decode(indices))
