"""CTC from scratch against torch's built-in, brute-force enumeration of alignments, and gradcheck."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from asrlib import native
from asrlib.ctc import collapse, ctc_loss, forward_backward, min_frames, occupation, viterbi

T, B, V = 12, 5, 5
TARGETS = torch.tensor([[1, 2, 2, 3], [4, 0, 0, 0], [1, 1, 1, 1], [2, 3, 0, 0], [3, 0, 0, 0]])
INPUT_LENGTHS = torch.tensor([12, 9, 5, 1, 7])   # item 2 needs 7 frames and item 3 two: impossible
TARGET_LENGTHS = torch.tensor([4, 1, 4, 2, 0])   # item 4: the empty target


def _logits(seed=0, T=T, B=B, V=V):
    torch.manual_seed(seed)
    return torch.randn(T, B, V, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("concatenated", [False, True])
def test_equals_torch_in_value_and_gradient(reduction, concatenated):
    x = _logits()
    targets = TARGETS[torch.arange(4) < TARGET_LENGTHS[:, None]] if concatenated else TARGETS
    for zero_infinity in (True, False):
        ours = ctc_loss(x.log_softmax(-1), targets, INPUT_LENGTHS, TARGET_LENGTHS, reduction=reduction, zero_infinity=zero_infinity)
        theirs = F.ctc_loss(x.log_softmax(-1), targets, INPUT_LENGTHS, TARGET_LENGTHS, reduction=reduction, zero_infinity=zero_infinity)
        torch.testing.assert_close(ours, theirs)
    if reduction == "none":
        assert torch.isinf(ours[2]) and torch.isinf(ours[3]) and torch.isfinite(ours[[0, 1, 4]]).all()
    # gradients through log_softmax (where torch's backward is defined), impossible targets zeroed
    g_ours, g_theirs = (
        torch.autograd.grad(f(x.log_softmax(-1), targets, INPUT_LENGTHS, TARGET_LENGTHS, reduction=reduction,
                              zero_infinity=True).sum(), x)[0]
        for f in (ctc_loss, F.ctc_loss)
    )
    torch.testing.assert_close(g_ours, g_theirs)
    assert g_ours.abs().sum() > 0


def test_gradcheck_on_log_probs_directly():
    x = _logits(1, T=6, B=3, V=4)
    log_probs = x.log_softmax(-1).detach().requires_grad_(True)
    args = (torch.tensor([[1, 2, 2], [3, 0, 0], [1, 3, 0]]), torch.tensor([6, 4, 5]), torch.tensor([3, 1, 2]))
    assert torch.autograd.gradcheck(lambda lp: ctc_loss(lp, *args, reduction="sum"), (log_probs,))
    assert torch.autograd.gradcheck(lambda lp: ctc_loss(lp, *args, reduction="mean"), (log_probs,))


def _brute_force(log_probs, target, blank=0):
    """Pr(z|x) and the occupation by enumerating every path of V^T labels."""
    Tn, Vn = log_probs.shape
    p = log_probs.exp()
    total, gamma = 0.0, torch.zeros(Tn, Vn, dtype=torch.float64)
    best, best_path = -1.0, None
    for path in itertools.product(range(Vn), repeat=Tn):
        if collapse(list(path), blank) != target:
            continue
        prob = math.prod(p[t, k].item() for t, k in enumerate(path))
        total += prob
        for t, k in enumerate(path):
            gamma[t, k] += prob
        if prob > best:
            best, best_path = prob, path
    return total, gamma / total, best_path


@pytest.mark.parametrize("target, blank", [
    ([1, 2], 0), ([2, 2], 0), ([1], 0), ([], 0), ([1, 2, 1], 0), ([3, 3], 0),
    ([0, 1], 3), ([1, 1], 3), ([], 3), ([2, 0, 2], 3),
])
def test_loss_occupation_and_viterbi_equal_brute_force_enumeration(target, blank):
    x = _logits(2, T=5, B=1, V=4)
    lp = x.log_softmax(-1)[:, 0].detach()
    total, gamma, best_path = _brute_force(lp, target, blank)
    tg = torch.tensor([target], dtype=torch.long).reshape(1, -1)
    loss = ctc_loss(lp.unsqueeze(1), tg, [5], [len(target)], blank=blank, reduction="sum")
    assert math.isclose(loss.item(), -math.log(total), rel_tol=1e-10)
    trellis = forward_backward(lp.unsqueeze(1), tg, [5], [len(target)], blank=blank)
    torch.testing.assert_close(occupation(trellis, lp.unsqueeze(1))[:, 0], gamma)
    assert viterbi(lp, torch.tensor(target, dtype=torch.long), blank=blank).tolist() == list(best_path)


def test_padded_batch_equals_one_by_one():
    lp = _logits(3).log_softmax(-1).detach()
    lp[torch.arange(T)[:, None] >= INPUT_LENGTHS[None, :]] = 0.0  # junk in the padding frames
    batch = ctc_loss(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, reduction="none")
    for b in range(B):
        n, u = int(INPUT_LENGTHS[b]), int(TARGET_LENGTHS[b])
        alone = ctc_loss(lp[:n, b : b + 1], TARGETS[b : b + 1, :u], [n], [u], reduction="none")
        torch.testing.assert_close(batch[b : b + 1], alone)


def test_min_frames_counts_the_blanks_between_repeats():
    assert min_frames(TARGETS, TARGET_LENGTHS).tolist() == [5, 1, 7, 2, 0]
    assert collapse([0, 3, 3, 0, 3, 5, 5, 0]) == [3, 3, 5]


def test_bad_arguments_name_the_problem():
    lp = _logits().log_softmax(-1)
    with pytest.raises(ValueError, match=r"\(T, B, V\)"):
        ctc_loss(lp[None], TARGETS, INPUT_LENGTHS, TARGET_LENGTHS)
    with pytest.raises(ValueError, match="input_lengths must lie in 0..12"):
        ctc_loss(lp, TARGETS, INPUT_LENGTHS + 1, TARGET_LENGTHS)
    with pytest.raises(ValueError, match="blank"):
        ctc_loss(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS.clamp(min=2))  # reaches the 0 padding
    with pytest.raises(ValueError, match="sum to"):
        ctc_loss(lp, torch.tensor([1, 2, 3]), INPUT_LENGTHS, TARGET_LENGTHS)
    with pytest.raises(ValueError, match="reduction"):
        ctc_loss(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, reduction="avg")
    with pytest.raises(ValueError, match="0..4"):
        ctc_loss(lp, TARGETS * 2, INPUT_LENGTHS, TARGET_LENGTHS)
    with pytest.raises(ValueError, match="no alignment"):
        viterbi(lp[:3, 0], torch.tensor([1, 1, 1]))


@pytest.mark.cuda
def test_cuda_equals_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = _logits()
    cpu = ctc_loss(x.log_softmax(-1), TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, zero_infinity=True)
    gpu = ctc_loss(x.cuda().log_softmax(-1), TARGETS.cuda(), INPUT_LENGTHS.cuda(), TARGET_LENGTHS.cuda(), zero_infinity=True)
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_unbatched_input_takes_scalar_lengths_like_torch():
    lp = torch.randn(9, 5, dtype=torch.float64).log_softmax(-1)
    target = torch.tensor([1, 3, 3])
    ours = ctc_loss(lp, target, 9, 3, reduction="sum")
    torch.testing.assert_close(ours, F.ctc_loss(lp, target, torch.tensor(9), torch.tensor(3), reduction="sum"))
    torch.testing.assert_close(ours, ctc_loss(lp[:, None], target[None], [9], [3], reduction="sum"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_trellis_equals_the_tensor_loop(dtype):
    """alpha, beta, ln Pr(z|x) and the gradient: repeats, an impossible target, no frames, no
    labels, and targets padded with non-blank garbage beyond their lengths."""
    if native.kernels() is None:
        pytest.skip(native.status())
    torch.manual_seed(3)
    T_, B_, V_, U_ = 30, 7, 7, 8
    lp = torch.randn(T_, B_, V_, dtype=dtype).mul(3).log_softmax(-1)
    targets = torch.randint(1, V_, (B_, U_))
    targets[0, 1] = targets[0, 0]                       # a repeat: no skip between them
    input_lengths = torch.tensor([30, 25, 0, 3, 30, 12, 1])
    target_lengths = torch.tensor([8, 5, 0, 5, 0, 4, 1])  # the fourth needs more frames than it has
    results = []
    for compiled in (True, False):
        x = lp.clone().requires_grad_(True)
        loss = ctc_loss(x, targets, input_lengths, target_lengths, reduction="none", compiled=compiled)
        loss.masked_fill(torch.isinf(loss), 0).sum().backward()
        trellis = forward_backward(lp, targets, input_lengths, target_lengths, compiled=compiled)
        results.append((loss, x.grad, trellis.log_alpha, trellis.log_beta, trellis.log_p))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)
    assert torch.isinf(results[0][0][3]) and results[0][0][2] == 0


def test_the_kernel_shares_the_batch_between_threads():
    """Cut into one share per thread, the batch gives what it gives in one piece."""
    if native.kernels() is None:
        pytest.skip(native.status())
    lp, targets = _logits(5, T=40, B=9).log_softmax(-1), torch.randint(1, V, (9, 6))
    lens, tlens = torch.full((9,), 40), torch.randint(0, 7, (9,))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        shared = ctc_loss(lp, targets, lens, tlens, reduction="none")
        torch.set_num_threads(1)
        whole = ctc_loss(lp, targets, lens, tlens, reduction="none")
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(shared, whole, rtol=0, atol=0)


def test_compiled_true_where_no_kernel_serves_says_so():
    """float16 (or a GPU tensor) has no compiled path: asking for it is an error, not a crash."""
    lp = _logits().detach().log_softmax(-1)
    with pytest.raises(ValueError, match="no compiled CTC for torch.float16"):
        forward_backward(lp.half(), TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, compiled=True)
    loop = forward_backward(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, compiled=False)
    torch.testing.assert_close(loop.log_p, forward_backward(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS).log_p)


def test_compiled_false_never_calls_the_kernel(monkeypatch):
    """The tensor loop is what compiled=False runs: the kernel, made to fail, is not reached."""
    def no_kernel(*args):
        raise AssertionError("the compiled kernel was called")

    monkeypatch.setattr(native, "ctc_trellis", no_kernel)
    lp = _logits().log_softmax(-1)
    ctc_loss(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, compiled=False).backward()
    assert torch.isfinite(forward_backward(lp, TARGETS, INPUT_LENGTHS, TARGET_LENGTHS, compiled=False).log_p[:2]).all()
