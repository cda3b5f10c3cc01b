"""Decoders against brute-force enumeration on tiny cases."""

import itertools
import math

import numpy as np
import pytest
import torch

from asrlib.ctc import collapse, ctc_loss
from asrlib.ctc_decode import beam_search, decode_batch, greedy, prefix_search
from asrlib.transducer_decode import transducer_beam_search


def _log_probs(seed, T=5, V=3, sharpness=1.0, blank_bias=0.0):
    rng = np.random.default_rng(seed)
    x = sharpness * rng.normal(size=(T, V))
    x[:, 0] += blank_bias
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def _ctc_labellings(lp, blank=0):
    """Pr(z|x) of every labelling, by enumerating all V^T paths."""
    probs = {}
    for path in itertools.product(range(lp.shape[1]), repeat=len(lp)):
        z = tuple(collapse(list(path), blank))
        probs[z] = probs.get(z, 0.0) + math.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return probs


def _transducer_labellings(lp, blank=0, max_len=7):
    """Pr(y) under the transducer with Pr(k|t,u) = Pr(k|t): any number of labels at each frame,
    then a blank to move on. Enumerates label counts per frame up to max_len labels."""
    T, V = lp.shape
    probs = {}

    def walk(t, y, logp):
        if t == T:
            probs[y] = probs.get(y, 0.0) + math.exp(logp)
            return
        walk(t + 1, y, logp + lp[t, blank])
        if len(y) < max_len:
            for k in range(V):
                if k != blank:
                    walk(t, y + (k,), logp + lp[t, k])

    walk(0, (), 0.0)
    return probs


@pytest.mark.parametrize("seed", range(6))
def test_transducer_beam_search_finds_the_most_probable_labelling(seed):
    # The enumeration covers every labelling of up to 7 labels exactly; every longer one is less
    # probable than all the mass it leaves out, so the best found is the best overall when its
    # probability exceeds that.
    lp = _log_probs(seed, T=4, V=3, sharpness=1.0, blank_bias=3.5)
    probs = _transducer_labellings(lp)
    best = max(probs, key=probs.get)
    assert probs[best] > 1 - sum(probs.values())
    result = transducer_beam_search(lp, beam=200)
    assert result[0][0] == best
    # exact scores for hypotheses whose labels fit in the enumeration
    for y, score in result[:20]:
        if len(y) <= 7:
            assert math.isclose(score, math.log(probs[y]), rel_tol=1e-9)
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_search_gives_every_ctc_labelling_its_exact_probability(seed):
    lp = _log_probs(seed, T=6, V=3, sharpness=1.5)
    probs = _ctc_labellings(lp)
    result = beam_search(lp, beam=1000)
    assert len(result) == len(probs)
    for y, score in result:
        assert math.isclose(score, math.log(probs[y]), rel_tol=1e-9)
    assert result[0][0] == max(probs, key=probs.get)
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)
    narrow = beam_search(lp, beam=3)
    assert len(narrow) == 3 and narrow[0][1] <= result[0][1] + 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_prefix_search_finds_the_most_probable_ctc_labelling(seed):
    lp = _log_probs(seed, T=6, V=3, sharpness=1.5)
    probs = _ctc_labellings(lp)
    best = max(probs, key=probs.get)
    (found, score), = prefix_search(lp)
    assert found == best and math.isclose(score, math.log(probs[best]), rel_tol=1e-9)
    # its score is the CTC probability, as ctc_loss computes it
    if found:
        loss = ctc_loss(torch.tensor(lp).unsqueeze(1), torch.tensor([found]), [6], [len(found)], reduction="sum")
        assert math.isclose(-loss.item(), score, rel_tol=1e-9)


def test_greedy_is_the_best_path_collapsed():
    lp = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.7, 0.1, 0.2], [0.1, 0.8, 0.1]]))
    ((labels, score),) = greedy(lp)
    assert labels == (1, 1) and math.isclose(score, math.log(0.6 * 0.7 * 0.8 * 0.7 * 0.8))


def test_peaky_outputs_all_decoders_agree_and_batch_equals_one_by_one():
    rng = np.random.default_rng(3)
    T, V = 40, 6
    lp = np.full((2, T, V), -8.0)
    truth = [[1, 3, 3, 5, 2], [4, 4, 1]]
    for b, z in enumerate(truth):
        lp[b, :, 0] = -0.01
        for i, k in enumerate(z):
            lp[b, 5 + 6 * i, :] = -8.0
            lp[b, 5 + 6 * i, k] = -0.01
    lp += 0.1 * rng.normal(size=lp.shape)
    lp -= np.logaddexp.reduce(lp, axis=2, keepdims=True)
    batch = torch.tensor(lp).transpose(0, 1)  # (T, B, V)
    lengths = [T, 30]
    for method in ("greedy", "prefix", "beam"):
        decoded = decode_batch(batch, lengths, method=method)
        assert [list(d[0][0]) for d in decoded] == truth
        assert decoded[1] == {"greedy": greedy, "prefix": prefix_search, "beam": beam_search}[method](lp[1, :30])
    assert len(beam_search(lp[0], beam=7)) == 7 and len(beam_search(lp[0], beam=7, nbest=3)) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"\(T, V\)"):
        beam_search(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="beam"):
        beam_search(np.zeros((2, 3)), beam=0)
    with pytest.raises(ValueError, match="unknown decoder"):
        decode_batch(torch.zeros(2, 1, 3), [2], method="viterbi")


def test_sectioned_prefix_search_matches_the_whole_search_on_peaky_outputs():
    """Cutting at near-certain blanks keeps the labelling; the score is a lower bound."""
    rng = np.random.default_rng(5)
    T, V, z = 60, 6, [2, 2, 4, 1, 5, 5, 3]
    lp = np.full((T, V), -6.0)
    lp[:, 0] = -0.0005
    for i, k in enumerate(z):
        lp[4 + 7 * i, :] = -6.0
        lp[4 + 7 * i, k] = -0.3  # a hesitant spike: the blank keeps some probability there
        lp[5 + 7 * i, k] = -1.0  # and the label a little on the next frame
    lp += 0.05 * rng.normal(size=lp.shape)
    lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
    (whole, exact), = prefix_search(lp, split_at=None)
    (cut, bound), = prefix_search(lp)
    assert list(whole) == list(cut) == z
    true = -ctc_loss(torch.tensor(lp), torch.tensor(z), T, len(z), reduction="sum").item()
    assert exact == pytest.approx(true, abs=1e-9)
    assert bound <= exact + 1e-12 and bound > exact - 1.0
    assert prefix_search(np.log(np.full((4, 3), 1 / 3)), split_at=0.2)[0][0] == ()  # every frame cut: nothing left
    with pytest.raises(ValueError, match="split_at"):
        prefix_search(lp, split_at=1.0)


def test_compiled_beam_search_equals_the_numpy_search():
    """The same hypotheses in the same order with the same scores: random lengths (none too),
    vocabularies, widths, blanks and sharpness, so beams fill, prune and merge."""
    from asrlib import ctc_decode, native

    if native.kernels() is None:
        pytest.skip(native.status())
    rng = np.random.default_rng(0)
    for _ in range(300):
        T, V, W = int(rng.integers(0, 30)), int(rng.integers(2, 7)), int(rng.integers(1, 12))
        lp, labels = ctc_decode._prepare(_log_probs(int(rng.integers(1 << 30)), T, V, rng.uniform(0.5, 5)),
                                         blank := int(rng.integers(0, V)), W)
        compiled = native.ctc_beam_search(lp, W, blank)
        reference = ctc_decode._beam_search_numpy(lp, labels, W, blank, None)
        assert [y for y, _ in compiled] == [y for y, _ in reference]
        np.testing.assert_allclose([s for _, s in compiled], [s for _, s in reference], rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_rescoring_gives_each_labelling_of_the_beam_its_exact_probability(seed):
    """Against brute-force enumeration: a narrow beam's labellings, rescored, carry their exact
    ln Pr(z|x) and come sorted; their order and membership are the beam's own."""
    lp = _log_probs(seed, T=6, V=3, sharpness=1.5)
    probs = _ctc_labellings(lp)
    narrow = beam_search(lp, beam=3)
    again = beam_search(lp, beam=3, rescore=True)
    assert {y for y, _ in again} == {y for y, _ in narrow}
    for y, score in again:
        assert math.isclose(score, math.log(probs[y]), rel_tol=1e-9)
    assert [s for _, s in again] == sorted((s for _, s in again), reverse=True)
    assert beam_search(lp, beam=3, rescore=True, nbest=1) == again[:1]


def test_rescoring_can_change_the_winner_of_a_pruned_beam():
    """Pruning leaves beam scores below the full probabilities, unevenly: on random outputs with
    a narrow beam, rescoring sometimes promotes a labelling, and then it is the more probable."""
    changed = 0
    for seed in range(200):
        lp = _log_probs(seed, T=12, V=4, sharpness=2.0)
        top, rescored_top = beam_search(lp, beam=2)[0], beam_search(lp, beam=2, rescore=True)[0]
        if top[0] != rescored_top[0]:
            changed += 1
            exact_top = -float(ctc_loss(torch.from_numpy(lp), torch.tensor(top[0]), [len(lp)], [len(top[0])],
                                        reduction="sum"))
            assert rescored_top[1] > exact_top
    assert changed > 0
