"""The phone n-gram LM against Witten-Bell's definition, and shallow fusion in CTC's beam search
against brute-force enumeration of every path."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from asrlib.ctc import collapse
from asrlib.ctc_decode import beam_search
from asrlib.ngram import PhoneNgram


def _corpus(seed, n=30, V=5):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(1, V, size=rng.integers(1, 9))) for _ in range(n)]


def _witten_bell(sequences, order, V, word, history):
    """P(word | history) from the definition, with string n-gram counts: interpolate the longest
    context's relative frequency with the next shorter one's estimate, weighted by the number of
    distinct followers; the empty context interpolates with the uniform over labels 1..V-1."""
    grams = Counter()
    for seq in sequences:
        padded = ["<s>"] * (order - 1) + [str(k) for k in seq]
        for i in range(order - 1, len(padded)):
            for n in range(order):
                grams[" ".join(padded[i - n: i + 1])] += 1
    history = (["<s>"] * (order - 1) + [str(k) for k in history])[len(history):] if order > 1 else []

    def p(h):
        lower = 1.0 / (V - 1) if not h else p(h[1:])
        follow = {g: c for g, c in grams.items() if g.split()[:-1] == h}
        total = sum(follow.values())
        if total == 0:
            return lower
        return (grams.get(" ".join(h + [str(word)]), 0) + len(follow) * lower) / (total + len(follow))

    return p(history)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_ngram_is_witten_bell_and_sums_to_one(order):
    V, seqs = 5, _corpus(order)
    lm = PhoneNgram.fit(seqs, order, V)
    for history in [(), (1,), (2, 3), (4, 4, 1), (3, 1, 2, 2)]:
        probs = np.exp(lm.log_probs(history))
        assert probs[0] == 0.0 and math.isclose(probs.sum(), 1.0, rel_tol=1e-12)
        for k in range(1, V):
            assert math.isclose(probs[k], _witten_bell(seqs, order, V, k, list(history)), rel_tol=1e-12)


def test_a_model_of_a_repeated_pattern_predicts_it():
    lm = PhoneNgram.fit([[1, 2, 3] * 20], 2, 4)
    assert np.exp(lm.log_probs((1,)))[2] > 0.9 and lm.perplexity([[1, 2, 3] * 5]) < 1.3
    assert lm.perplexity([[3, 2, 1] * 5]) > 5                 # the reverse order is unlikely


def test_bad_labels_and_orders_are_named():
    with pytest.raises(ValueError, match="labels \\[0, 7\\]"):
        PhoneNgram.fit([[1, 0, 7]], 2, 4)
    with pytest.raises(ValueError, match="order"):
        PhoneNgram(0, 4)


def test_beam_search_without_lm_weight_is_the_plain_search():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    lp = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
    lm = PhoneNgram.fit(_corpus(1), 2, 5)
    plain = beam_search(lp, beam=8)
    fused = beam_search(lp, beam=8, lm=lm, lm_weight=0.0)
    assert [y for y, _ in plain] == [y for y, _ in fused]
    np.testing.assert_allclose([s for _, s in plain], [s for _, s in fused], rtol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_a_wide_fused_beam_scores_each_labelling_as_enumeration_does(seed):
    rng = np.random.default_rng(seed)
    T, V, weight, bonus = 5, 3, 0.7, 0.4
    x = 1.5 * rng.normal(size=(T, V))
    lp = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
    lm = PhoneNgram.fit(_corpus(seed, V=V), 2, V)
    acoustic = {}
    for path in itertools.product(range(V), repeat=T):
        y = tuple(collapse(list(path), 0))
        acoustic[y] = np.logaddexp(acoustic.get(y, -np.inf), sum(lp[t, k] for t, k in enumerate(path)))
    expected = {y: a + weight * lm.sequence_log_prob(y) + bonus * len(y) for y, a in acoustic.items()}
    result = beam_search(lp, beam=1000, lm=lm, lm_weight=weight, insertion_bonus=bonus)
    assert len(result) == len(expected)
    for y, score in result:
        assert math.isclose(score, expected[y], rel_tol=1e-9)
    assert result[0][0] == max(expected, key=expected.get)
    with pytest.raises(ValueError, match="rescore"):
        beam_search(lp, lm=lm, rescore=True)


def test_a_scoring_class_model_gives_each_label_its_class_probability():
    from asrlib.ngram import SILENCE, ScoringClassLM
    from asrlib.phones import SCORING39, PhoneSet

    phones = PhoneSet("espeak")
    rng = np.random.default_rng(0)
    classes = [c for c in SCORING39 if c != "sil"]
    sentences = [list(rng.choice(classes, size=rng.integers(3, 12))) for _ in range(300)]
    lm = ScoringClassLM.fit(sentences, 3, phones)
    reference = PhoneNgram.fit(ScoringClassLM.indices(sentences), 3, len(SCORING39), exclude=(SILENCE,))
    pause, deleted = phones.encode(["pau"])[0], phones.encode([";"])[0]
    for _ in range(20):
        prefix = list(rng.integers(1, phones.num_classes, size=rng.integers(0, 6)))
        # the context by another road: the labels' names folded (silence and deleted ones dropped)
        context = [SCORING39.index(c) for c in phones.fold(phones.decode(prefix)) if c != "sil"]
        expected = reference.log_probs(tuple(context))
        got = lm.log_probs(prefix)
        for k in range(1, phones.num_classes):
            folded = phones.fold(phones.decode([k]))
            assert got[k] == (expected[SCORING39.index(folded[0])] if folded and folded[0] != "sil" else 0.0)
        np.testing.assert_array_equal(lm.log_probs(prefix + [pause, deleted]), got)  # pauses leave the context alone
    with pytest.raises(ValueError, match="'xx'"):
        ScoringClassLM.fit([["dh", "xx"]], 2, phones)


def test_english_phone_sentences_are_english_and_seeded():
    from asrlib.ngram import english_phone_sentences
    from asrlib.phones import SCORING39

    a, b, c = (english_phone_sentences(sentences=300, words=500, seed=s) for s in (0, 0, 1))
    assert a == b and a != c and len(a) == 300
    assert {p for s in a for p in s} <= set(SCORING39) - {"sil"}
    follows_dh = Counter(s[i + 1] for s in a for i in range(len(s) - 1) if s[i] == "dh")
    assert follows_dh["ah"] > 0.5 * sum(follows_dh.values())  # 'the' outnumbers 'that', 'this', 'they', ...
    uniform = english_phone_sentences(sentences=300, words=500, weighted=False)
    follows_dh = Counter(s[i + 1] for s in uniform for i in range(len(s) - 1) if s[i] == "dh")
    assert follows_dh["ah"] < 0.5 * sum(follows_dh.values())  # every word alike: 'the' is one dh-word of many


def _stream_starts_with(prefix, words, probs):
    """P(an endless stream of independently drawn words begins with ``prefix``), by enumeration:
    the prefix is whole words then part (possibly none) of one more, split every possible way."""
    if not prefix:
        return 1.0
    total = 0.0
    for word, p in zip(words, probs):
        if len(word) > len(prefix) and word[: len(prefix)] == prefix:
            total += p  # the prefix ends inside this word
        elif word == prefix[: len(word)]:
            total += p * _stream_starts_with(prefix[len(word):], words, probs)
    return total


def test_a_lexicon_model_is_exact_against_enumerating_every_split_into_words():
    from asrlib.ngram import LexiconLM, ScoringClassLM
    from asrlib.phones import SCORING39

    # words that overlap: 'ah' + 'n' and 'ah n', 'n iy' after either, a homophone pair, a long one
    spoken = [["ah"], ["ah", "n"], ["n", "iy"], ["n"], ["b", "iy"], ["b", "iy"], ["ah", "n", "ah", "dh", "er"]]
    probs = np.array([0.3, 0.2, 0.1, 0.1, 0.05, 0.1, 0.15])
    words = [tuple(w) for w in ScoringClassLM.indices(spoken)]
    backoff = PhoneNgram.fit(ScoringClassLM.indices(spoken), 2, len(SCORING39), exclude=(SCORING39.index("sil"),))
    lm = LexiconLM(spoken, probs, backoff, mix=1.0)
    rng = np.random.default_rng(0)
    alphabet = sorted({c for w in words for c in w})
    checked = 0
    for _ in range(200):
        prefix = tuple(int(c) for c in rng.choice(alphabet, size=rng.integers(0, 7)))
        start = _stream_starts_with(prefix, words, probs)
        if start == 0:
            continue
        expected = np.array([_stream_starts_with(prefix + (k,), words, probs) for k in range(len(SCORING39))]) / start
        np.testing.assert_allclose(lm.probs(prefix), expected, atol=1e-12)
        checked += 1
    assert checked > 50
    mixed = LexiconLM(spoken, probs, backoff, mix=0.7)
    context = tuple(words[1])
    np.testing.assert_allclose(np.exp(mixed.log_probs(context)),
                               0.7 * lm.probs(context) + 0.3 * np.exp(backoff.log_probs(context)))
    assert np.isclose(np.exp(mixed.log_probs(context)).sum(), 1.0)
    # a class no word continues with starts a new word: the model goes on, no worse than its backoff
    unknown = tuple(words[4]) + (SCORING39.index("k"),)
    assert np.isfinite(mixed.log_probs(unknown + tuple(words[0]))[words[1][-1]])
    assert lm.knows(["ah", "n"]) and lm.knows(["n"]) and not lm.knows(["ah", "n", "ah"]) and not lm.knows([])
    with pytest.raises(ValueError, match="mixture"):
        LexiconLM(spoken, probs, backoff, mix=1.5)
    with pytest.raises(ValueError, match="'xx'"):
        LexiconLM([["xx"]], [1.0], backoff, mix=0.5)


def test_a_lexicon_model_that_reads_pauses_starts_a_word_after_one_against_enumeration():
    from asrlib.ngram import SILENCE, LexiconLM, ScoringClassLM
    from asrlib.phones import SCORING39, PhoneSet

    spoken = [["ah"], ["ah", "n"], ["n", "iy"], ["n"], ["b", "iy"], ["ah", "n", "ah", "dh", "er"]]
    probs = np.array([0.3, 0.2, 0.1, 0.1, 0.15, 0.15])
    words = [tuple(w) for w in ScoringClassLM.indices(spoken)]
    backoff = PhoneNgram.fit(ScoringClassLM.indices(spoken), 2, len(SCORING39), exclude=(SILENCE,))
    lm, deaf = LexiconLM(spoken, probs, backoff, mix=1.0, pauses=True), LexiconLM(spoken, probs, backoff, mix=1.0)
    rng = np.random.default_rng(1)
    alphabet = sorted({c for w in words for c in w})
    checked = moved = 0
    for _ in range(200):
        before, after = (tuple(int(c) for c in rng.choice(alphabet, size=rng.integers(n, 5))) for n in (1, 0))
        start = _stream_starts_with(after, words, probs)
        if start == 0:
            continue
        # after a pause, the words begin afresh: what came before it cannot matter to them
        expected = np.array([_stream_starts_with(after + (k,), words, probs) for k in range(len(SCORING39))]) / start
        np.testing.assert_allclose(lm.probs(before + (SILENCE,) + after), expected, atol=1e-12)
        moved += not np.allclose(deaf.probs(before + after), expected)
        checked += 1
    assert checked > 50 and moved > 10  # a model blind to the pause would get these wrong
    # fused: the pause reaches the words, the backoff sees the classes without it
    phones = PhoneSet("espeak")
    mixed = LexiconLM(spoken, probs, backoff, mix=0.7, pauses=True)
    fused, plain = ScoringClassLM(mixed, phones), ScoringClassLM(LexiconLM(spoken, probs, backoff, mix=0.7), phones)
    pause, n, ah = phones.encode(["pau"])[0], *phones.encode(["n", "@"])
    got = fused.log_probs([pause, ah, pause, pause, n])
    context = (words[0][0], SILENCE, words[3][0])
    with np.errstate(divide="ignore"):
        expected = np.log(0.7 * lm.probs(context) + 0.3 * np.exp(backoff.log_probs(context[::2])))
    assert got[ah] == expected[words[0][0]] and got[pause] == 0.0
    np.testing.assert_allclose(np.exp(mixed.log_probs(context)).sum(), 1.0)
    assert not np.allclose(got, plain.log_probs([pause, ah, pause, pause, n]))
    np.testing.assert_array_equal(plain.log_probs([pause, ah, pause, pause, n]), plain.log_probs([ah, n]))
    got = fused.log_probs([ah, pause])  # a pause last: the backoff's context is still the class before it
    with np.errstate(divide="ignore"):
        expected = np.log(0.7 * lm.probs(()) + 0.3 * np.exp(backoff.log_probs(words[0][:1])))
    np.testing.assert_allclose(got[n], expected[words[3][0]])


def test_a_lexicon_model_of_english_knows_english_better_than_an_ngram_of_the_same_words():
    from asrlib.ngram import SILENCE, LexiconLM, ScoringClassLM, english_phone_sentences
    from asrlib.phones import SCORING39
    from asrlib.realspeech import fold_arpabet, pronounce

    backoff = PhoneNgram.fit(ScoringClassLM.indices(english_phone_sentences(sentences=2000, words=2000)), 3,
                             len(SCORING39), exclude=(SILENCE,))
    lexicon = LexiconLM.english(backoff, mix=0.9, words=2000)
    said = [fold_arpabet(pronounce(text)) for text in ("there is a house in the middle of the city",
                                                        "she said that they would come back before the night")]
    assert lexicon.perplexity(ScoringClassLM.indices(said)) < 0.8 * backoff.perplexity(ScoringClassLM.indices(said))
