"""A phone n-gram language model, for CTC's beam search (shallow fusion).

The paper's CTC networks decode without a language model; its transducer learns one inside
(the prediction network). Between the two lies the oldest trick of speech recognition: multiply
each hypothesis's acoustic probability by a language model's, raised to a weight,

    score(y) = ln Pr(y|x) + alpha ln P_LM(y) + beta |y|,

where ``beta`` rewards each label (the LM's factor shrinks with every label, so without it the
search prefers short hypotheses). :func:`asrlib.ctc_decode.beam_search` applies the LM's factor
as a prefix grows (``lm=``, ``lm_weight=``, ``insertion_bonus=``), as in Hannun et al. (2014).

:class:`PhoneNgram` is an n-gram model of label sequences with interpolated Witten-Bell smoothing
(Witten & Bell 1991; Chen & Goodman 1999, section 2.4): the probability of label ``k`` after a
context ``h`` of the last ``n - 1`` labels mixes what followed ``h`` in the training
transcriptions with the estimate from the shorter context ``h'``,

    P(k|h) = (c(h k) + T(h) P(k|h')) / (c(h) + T(h)),

where ``c`` counts and ``T(h)`` is the number of distinct labels seen after ``h``: a context
followed by many different labels trusts its own counts less. The shortest context backs off
to the uniform distribution over the labels, so no label is impossible. A sequence's start is
a context of its own (padding with a start symbol), so ``P(k|start)`` is learnt too.

What the model learns is its text. Fitted to the synthetic corpus's transcriptions, it learns the
sentence generator; people say other things. :func:`english_phone_sentences` gives it English
instead: sentences of words drawn as often as English uses them (the ``wordfreq`` package's
frequencies, from subtitles, books, the web and Wikipedia), each word spoken as the CMU
pronouncing dictionary says, folded to the 39 scoring classes. Such a model knows which phones
English puts together, within a word and across two, but no grammar: its words are drawn
independently. :class:`ScoringClassLM` lets a network of finer labels (the corpus's espeak
phones) be fused with a model of the 39 classes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from asrlib.phones import SCORING39, PhoneSet

START = -1  # the context before a sequence's first label


class PhoneNgram:
    """An n-gram model over labels ``0..num_labels-1`` other than those in ``exclude`` (the
    blank), which get probability 0. Fit with :meth:`fit`; :meth:`log_probs` gives
    ``ln P(k | context)`` for every label at once."""

    pauses = False  # silence is a label like any other (LexiconLM can read it as a word boundary)

    def __init__(self, order: int, num_labels: int, exclude: Iterable[int] = (0,)):
        if order < 1:
            raise ValueError(f"an n-gram model's order is at least 1, got {order}")
        self.order, self.num_labels = order, num_labels
        self.exclude = tuple(sorted(set(exclude)))
        if any(not 0 <= e < num_labels for e in self.exclude):
            raise ValueError(f"excluded labels {self.exclude} must lie in 0..{num_labels - 1}")
        # counts[h] = how often each label followed context h (a tuple of up to order - 1 labels)
        self.counts: dict[tuple[int, ...], np.ndarray] = defaultdict(lambda: np.zeros(num_labels))

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[int]], order: int, num_labels: int,
            exclude: Iterable[int] = (0,)) -> PhoneNgram:
        """Count every label of ``sequences`` after each of its contexts of 0..order-1 labels."""
        lm = cls(order, num_labels, exclude)
        for seq in sequences:
            seq = [int(k) for k in seq]
            bad = [k for k in seq if not 0 <= k < num_labels or k in lm.exclude]
            if bad:
                raise ValueError(f"labels {sorted(set(bad))} cannot be counted: they lie outside 0..{num_labels - 1} "
                                 f"or are excluded ({lm.exclude})")
            padded = [START] * (order - 1) + seq
            for i, k in enumerate(seq):
                history = padded[i: i + order - 1]
                for n in range(order):  # the contexts of n labels before k
                    lm.counts[tuple(history[len(history) - n:]) if n else ()][k] += 1
        lm.counts = dict(lm.counts)
        lm._log_probs.cache_clear()
        return lm

    def _probs(self, context: tuple[int, ...]) -> np.ndarray:
        if not context:
            p = np.ones(self.num_labels)
            p[list(self.exclude)] = 0.0
            lower = p / p.sum()
        else:
            lower = self._probs(context[1:])
        c = self.counts.get(context)
        if c is None:
            return lower
        total, distinct = c.sum(), np.count_nonzero(c)
        return (c + distinct * lower) / (total + distinct)

    def log_probs(self, prefix: Sequence[int]) -> np.ndarray:
        """``ln P(k | prefix)`` for every label ``k``, shape ``(num_labels,)``, after the labels
        ``prefix`` (only its last ``order - 1`` count; a shorter one is a sequence's start)."""
        need = self.order - 1
        return self._log_probs(((START,) * need + tuple(prefix[len(prefix) - need:]))[-need:] if need else ())

    @lru_cache(maxsize=None)  # noqa: B019 - the model is read-only once fitted
    def _log_probs(self, context: tuple[int, ...]) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self._probs(context))

    def sequence_log_prob(self, labels: Sequence[int]) -> float:
        """``ln P_LM(labels)``: the sum of each label's log probability after the ones before it."""
        return float(sum(self.log_probs(tuple(labels[:i]))[k] for i, k in enumerate(labels)))

    def perplexity(self, sequences: Iterable[Sequence[int]]) -> float:
        """``exp`` of the mean negative log probability per label over ``sequences``."""
        total, n = 0.0, 0
        for seq in sequences:
            total -= self.sequence_log_prob(list(seq))
            n += len(seq)
        return float(np.exp(total / max(n, 1)))


SILENCE = SCORING39.index("sil")


class ScoringClassLM:
    """A model of the 39 scoring classes (:data:`asrlib.phones.SCORING39`, silence excluded) for a
    network whose labels are ``phones``: label ``k`` gets the log probability of its class after
    the classes of the prefix, ``ln P(fold(k) | fold(prefix))``. Labels that fold to silence or
    to nothing (pauses, deleted symbols) are free: log probability 0, and left out of the
    context, as they are left out of the scoring. Only ranks matter in a beam, so the labels of
    one class sharing its probability (not splitting it) is harmless."""

    def __init__(self, lm: PhoneNgram | LexiconLM, phones: PhoneSet):
        if lm.num_labels != len(SCORING39):
            raise ValueError(f"a scoring-class model has {len(SCORING39)} labels, got {lm.num_labels}")
        self.lm, self.order = lm, lm.order
        self.table = np.array(phones.fold_table())  # label -> class index, -1 deleted (and the blank)
        self.free = (self.table < 0) | (self.table == SILENCE)
        # the labels in the context: silence too for a model that reads pauses as word boundaries (LexiconLM's)
        self.heard = ~self.free | ((self.table == SILENCE) & lm.pauses)
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    @staticmethod
    def indices(sentences: Iterable[Sequence[str]]) -> list[list[int]]:
        """``sentences`` of scoring-class names (silence left out) as class indices."""
        index = {c: i for i, c in enumerate(SCORING39) if c != "sil"}
        out = []
        for sentence in sentences:
            unknown = sorted({c for c in sentence if c not in index})
            if unknown:
                raise ValueError(f"{unknown} are not scoring classes other than silence: {sorted(index)}")
            out.append([index[c] for c in sentence])
        return out

    @classmethod
    def fit(cls, sentences: Iterable[Sequence[str]], order: int, phones: PhoneSet) -> ScoringClassLM:
        """Fit an n-gram of ``order`` to ``sentences`` of scoring-class names (silence left out)."""
        return cls(PhoneNgram.fit(cls.indices(sentences), order, len(SCORING39), exclude=(SILENCE,)), phones)

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """The class model's perplexity on ``sentences`` of scoring-class names (silence left out)."""
        return self.lm.perplexity(self.indices(sentences))

    def log_probs(self, prefix: Sequence[int]) -> np.ndarray:
        """``ln P(fold(k) | fold(prefix))`` for every label ``k`` of the network (0 for the free ones)."""
        classes = tuple(int(self.table[k]) for k in prefix if self.heard[k])
        if self.order is not None:  # an n-gram: only the last order - 1 classes count
            classes = classes[len(classes) - self.order + 1:] if self.order > 1 else ()
        context = classes
        if context not in self._cache:
            lp = self.lm.log_probs(context)[np.maximum(self.table, 0)]
            lp[self.free] = 0.0
            self._cache[context] = lp
        return self._cache[context]


def english_words(words: int = 30000) -> tuple[list[list[str]], np.ndarray]:
    """The ``words`` most frequent English words that the CMU pronouncing dictionary knows (in
    ``wordfreq``'s large English list), each as the dictionary's first pronunciation folded to
    scoring-class names, and their frequencies."""
    try:
        import wordfreq
    except ImportError as err:  # pragma: no cover (a requirement of the book)
        raise ImportError("an English phone model needs word frequencies: pip install wordfreq") from err
    from asrlib.realspeech import _dictionary, fold_arpabet

    dictionary, chosen = _dictionary(), []
    for word in wordfreq.top_n_list("en", 2 * words, wordlist="large"):
        if re.fullmatch(r"[a-z]+(?:'[a-z]+)?", word) and word in dictionary:
            chosen.append(word)
            if len(chosen) == words:
                break
    frequency = np.array([wordfreq.word_frequency(w, "en", wordlist="large") for w in chosen])
    return [fold_arpabet(dictionary[w][0]) for w in chosen], frequency


def english_phone_sentences(sentences: int = 20000, words: int = 30000, lengths: tuple[int, int] = (4, 15),
                            seed: int = 0, weighted: bool = True) -> list[list[str]]:
    """``sentences`` of English as scoring-class names (silence left out): each of ``lengths[0]`` to
    ``lengths[1]`` words, drawn independently (seeded) from :func:`english_words`, in proportion
    to their frequency (``weighted=False``: all equally likely)."""
    spoken, frequency = english_words(words)
    rng, chance = np.random.default_rng(seed), frequency / frequency.sum() if weighted else None
    out = []
    for _ in range(sentences):
        drawn = rng.choice(len(spoken), size=int(rng.integers(lengths[0], lengths[1] + 1)), p=chance)
        out.append([c for j in drawn for c in spoken[j]])
    return out


class LexiconLM:
    """A model of the scoring classes that knows words: a sentence is a sequence of words, each
    drawn independently with probability ``probs[i]`` and spoken as ``spoken[i]`` (scoring-class
    names). The words share a prefix tree (a trie) of their phones, and a prefix of classes may
    split into words in many ways; the model keeps, after each prefix, the probability of every
    node of the tree it may have reached (summed over the splits), so ``P(k | prefix)`` is exact,
    however far back the current word began, which an n-gram of the same sentences only
    approximates. Such a model gives 0 to a class no word can continue with (a name it does not
    know, a mispronunciation), so it is mixed with ``backoff`` (a class n-gram,
    :meth:`ScoringClassLM.fit`'s ``lm``): ``mix P_words + (1 - mix) P_backoff``. Where the words
    cannot continue, the prefix starts a new word there. :class:`ScoringClassLM` fuses it.

    With ``pauses=True`` a silence in the context (which :class:`ScoringClassLM` then passes on, where
    it otherwise leaves silence out) is a word boundary: people pause between words, rarely inside one,
    so after a pause every split that is inside a word is dropped and the next class starts a word. The
    backoff never sees silence (it was fitted without it), and silence itself stays free."""

    order = None  # every class of the prefix counts

    def __init__(self, spoken: Sequence[Sequence[str]], probs: Sequence[float], backoff: PhoneNgram, mix: float,
                 pauses: bool = False):
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"the words' share of the mixture lies in [0, 1], got {mix}")
        if len(spoken) != len(probs) or not len(spoken):
            raise ValueError(f"{len(spoken)} pronunciations for {len(probs)} probabilities")
        if backoff.num_labels != len(SCORING39):
            raise ValueError(f"the backoff is a model of the {len(SCORING39)} scoring classes, got {backoff.num_labels}")
        self.backoff, self.mix, self.pauses, self.num_labels = backoff, mix, pauses, len(SCORING39)
        probs = np.asarray(probs, float) / np.sum(probs)
        children, end, mass = [{}], [0.0], [1.0]  # node 0 is the root: between words
        for word, p in zip(ScoringClassLM.indices(spoken), probs):
            if not word:
                raise ValueError("a word of no scoring class (every phone folds away) cannot be spoken")
            node = 0
            for c in word:
                if c not in children[node]:
                    children[node][c] = len(children)
                    children.append({}), end.append(0.0), mass.append(0.0)
                node = children[node][c]
                mass[node] += p
            end[node] += p
        self.children, self.end = children, np.asarray(end) / np.asarray(mass)  # P(the word ends here | node)
        self.step = [{c: mass[child] / mass[node] for c, child in kids.items()} for node, kids in enumerate(children)]
        self._states: dict[tuple[int, ...], dict[int, float]] = {(): {0: 1.0}}
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    @classmethod
    def english(cls, backoff: PhoneNgram, mix: float, words: int = 30000, pauses: bool = False) -> LexiconLM:
        """The :func:`english_words` as a :class:`LexiconLM`, each as likely as English uses it."""
        return cls(*english_words(words), backoff, mix, pauses)

    def knows(self, spoken: Sequence[str]) -> bool:
        """Whether ``spoken`` (scoring-class names) is the pronunciation of one of the model's words."""
        node = 0
        for c in ScoringClassLM.indices([spoken])[0]:
            if c not in self.children[node]:
                return False
            node = self.children[node][c]
        return node != 0 and self.end[node] > 0

    def _state(self, prefix: tuple[int, ...]) -> dict[int, float]:
        """The probability of each node of the tree after ``prefix`` (summing to 1)."""
        if prefix not in self._states:
            before, c = self._state(prefix[:-1]), prefix[-1]
            between = sum(p * self.end[node] for node, p in before.items()) + before.get(0, 0.0)
            after: dict[int, float] = defaultdict(float)
            for node, p in ((0, between), *((n, p) for n, p in before.items() if n)):
                if c in self.children[node]:
                    after[self.children[node][c]] += p * self.step[node][c]
            total = sum(after.values())
            if total > 0:
                after = {n: p / total for n, p in after.items() if p > 1e-12 * total}
            else:  # no word continues with c: a new word starts with it (or, if none does, after it: a pause)
                after = {self.children[0][c]: 1.0} if c in self.children[0] else {0: 1.0}
            self._states[prefix] = after
        return self._states[prefix]

    def probs(self, context: Sequence[int]) -> np.ndarray:
        """``P_words(k | context)`` for every class ``k`` (the words alone, not mixed)."""
        state, p = self._state(tuple(context)), np.zeros(self.num_labels)
        between = sum(q * self.end[node] for node, q in state.items()) + state.get(0, 0.0)
        for node, q in ((0, between), *((n, q) for n, q in state.items() if n)):
            for c, s in self.step[node].items():
                p[c] += q * s
        return p

    def log_probs(self, context: Sequence[int]) -> np.ndarray:
        """``ln(mix P_words(k | context) + (1 - mix) P_backoff(k | context))`` for every class ``k``."""
        context = tuple(context)
        if context not in self._cache:
            classes = tuple(c for c in context if c != SILENCE)
            mixed = self.mix * self.probs(context) + (1 - self.mix) * np.exp(self.backoff.log_probs(classes))
            with np.errstate(divide="ignore"):
                self._cache[context] = np.log(mixed)
        return self._cache[context]

    def perplexity(self, sequences: Iterable[Sequence[int]]) -> float:
        """``exp`` of the mean negative log probability per class over ``sequences``."""
        total, n = 0.0, 0
        for seq in sequences:
            seq = [int(k) for k in seq]
            total -= sum(float(self.log_probs(seq[:i])[k]) for i, k in enumerate(seq))
            n += len(seq)
        return float(np.exp(total / max(n, 1)))
