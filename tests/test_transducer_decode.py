"""Decoding the transducer: the beam search finds the brute-force most probable labelling, the
batched scorer equals one hypothesis at a time, greedy's batch equals one by one, and both finish
on an adversarial network whose blank has probability 0."""

import itertools
import math

import pytest
import torch

from asrlib.transducer import Transducer, rnnt_loss
from asrlib.transducer_decode import NetworkScorer, beam_search, greedy, search, transducer_beam_search


def tiny(seed: int, prior: float = 1.5, sharpness: float = 1.0) -> Transducer:
    torch.manual_seed(seed)
    model = Transducer("lstm", 3, 5, 1, 3, peephole=False).double().eval()   # V = 3: blank and phones 1, 2
    with torch.no_grad():
        model.output.weight.mul_(sharpness)
    return model.init_blank_prior_(prior)


def labelling_probs(model, x, max_len: int) -> dict[tuple[int, ...], float]:
    """Pr(y|x) of every labelling of up to max_len phones, each from the loss of its lattice."""
    probs = {}
    for n in range(max_len + 1):
        for y in itertools.product((1, 2), repeat=n):
            target = torch.tensor([y], dtype=torch.long).view(1, n)
            with torch.no_grad():
                logits = model(x[None], torch.tensor([len(x)]), target, torch.tensor([n]))
                probs[y] = math.exp(-rnnt_loss(logits, target, torch.tensor([len(x)]), torch.tensor([n]), reduction="sum"))
    return probs


# networks whose labellings of up to 6 phones hold enough of the mass for the enumeration to
# decide the best one (the assertion below checks it): two with the empty labelling best, three with one phone
@pytest.mark.parametrize("seed, prior, sharpness", [(0, 1.5, 3.0), (3, 1.5, 3.0), (2, 1.5, 3.0), (22, 1.0, 4.0),
                                                    (23, 1.0, 4.0)])
def test_a_wide_beam_finds_the_most_probable_labelling(seed, prior, sharpness):
    model = tiny(seed, prior, sharpness)
    x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    probs = labelling_probs(model, x, max_len=6)
    best = max(probs, key=probs.get)
    # every labelling left out (7 phones or more) is less probable than the mass it leaves out
    assert probs[best] > 1 - sum(probs.values())
    result = beam_search(model, x, beam=200, max_symbols=8)
    assert result[0][0] == best
    for y, score in result[:10]:
        if y in probs:                  # a wide beam keeps every path: exact probabilities
            assert math.isclose(score, math.log(probs[y]), rel_tol=1e-7)
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)
    normalised = beam_search(model, x, beam=200, max_symbols=8, length_norm=True)
    keys = [s / max(len(y), 1) for y, s in normalised]
    assert keys == sorted(keys, reverse=True)


def test_batched_scorer_equals_one_hypothesis_at_a_time_with_fewer_calls():
    model = tiny(5)
    x = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    batched, single = NetworkScorer(model, x), NetworkScorer(model, x, batched=False)
    a = search(len(x), 3, batched, beam=8, prefetch=batched.prefetch)
    b = search(len(x), 3, single, beam=8, prefetch=single.prefetch)
    assert [y for y, _ in a] == [y for y, _ in b]
    assert all(math.isclose(s, t, rel_tol=1e-12) for (_, s), (_, t) in zip(a, b))
    assert batched.joint_calls < single.joint_calls


def test_greedy_batch_equals_one_by_one_and_scores_one_alignment():
    model = tiny(6, prior=0.5)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 9, 3, dtype=torch.float64, generator=g)
    lens = torch.tensor([9, 4, 7])
    x[1, 4:] = 1e3                                              # padding must not matter
    batch = greedy(model, x, lens)
    for b, n in enumerate(lens.tolist()):
        alone = greedy(model, x[b : b + 1, :n])[0]
        assert alone[0] == batch[b][0] and math.isclose(alone[1], batch[b][1], rel_tol=1e-9)
        y = torch.tensor([batch[b][0]], dtype=torch.long).view(1, -1)
        with torch.no_grad():
            logits = model(x[b : b + 1, :n], torch.tensor([n]), y, torch.tensor([y.shape[1]]))
            total = -rnnt_loss(logits, y, torch.tensor([n]), torch.tensor([y.shape[1]]), reduction="sum").item()
        assert batch[b][1] <= total + 1e-9                      # one alignment of its labelling


def test_decoding_finishes_when_the_blank_is_impossible():
    """An adversarial network whose blank has probability 0: no path ever leaves a frame by
    choice, and both decoders stop at their documented bounds."""
    model = tiny(7)
    with torch.no_grad():
        model.output.bias[0] = -math.inf
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    result = beam_search(model, x, beam=5, max_symbols=3)
    assert result and all(len(y) <= 4 * 3 for y, _ in result)
    assert all(s == -math.inf for _, s in result)
    unbounded = beam_search(model, x, beam=5, max_symbols=10_000, max_pops=200)   # the pop bound alone
    assert unbounded and all(len(y) <= 4 * 200 for y, _ in unbounded)
    labels, score = greedy(model, x[None], max_symbols=3)[0]
    assert len(labels) == 4 * 3 and score == -math.inf         # three labels a frame, then the blank is forced
    lp = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), -1)
    lp[:, 0] = -math.inf
    assert transducer_beam_search(lp, beam=5, max_symbols=2, max_pops=50)


def test_bad_arguments_are_named():
    model = tiny(8)
    with pytest.raises(ValueError, match=r"one utterance of shape \(T, F\)"):
        beam_search(model, torch.randn(1, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"a batch of shape \(B, T, F\)"):
        greedy(model, torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 1"):
        beam_search(model, torch.randn(4, 3, dtype=torch.float64), beam=0)
