"""The RNN transducer: its loss against brute-force enumeration of every alignment, the published
test vector of the transducer libraries and float64 gradcheck; the joint network of eq. (15)-(18)."""

import itertools
import math

import pytest
import torch

from asrlib.models import build_model
from asrlib.transducer import Transducer, rnnt_loss
from asrlib.transducer_loss import occupation, viterbi


def test_transducer_joint_is_eq_16_17_and_prediction_is_causal():
    torch.manual_seed(2)
    model = build_model("Trans-1l-8h", input_size=4, num_classes=6).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    y = torch.tensor([[3, 1, 5], [2, 4, 0]])
    logits = model(x, torch.tensor([5, 4]), y, torch.tensor([3, 2]))
    assert logits.shape == (2, 5, 4, 6)
    l, p = model.encode(x, torch.tensor([5, 4])), model.predict(y, torch.tensor([3, 2]))  # noqa: E741
    h = torch.tanh(l[0, 2] @ model.joint_l.weight.T + model.joint_l.bias + p[0, 1] @ model.joint_p.weight.T)
    torch.testing.assert_close(logits[0, 2, 1], h @ model.output.weight.T + model.output.bias)
    # p_u sees y_1..y_u only: changing y_3 leaves p_0..p_2 alone; p_0 is the same for every sequence
    changed = model.predict(torch.tensor([[3, 1, 2], [2, 4, 0]]))
    torch.testing.assert_close(changed[:, :3], p[:, :3])
    torch.testing.assert_close(p[0, 0], p[1, 0])
    with pytest.raises(ValueError, match="1..5"):
        model.predict(torch.tensor([[6]]))


# ---------------------------------------------------------------------------------------------
# the loss, against brute force over every alignment


def alignments(T: int, U: int):
    """Every path through the T x (U+1) lattice: T blanks and U labels in any order, ending in a
    blank, as a tuple of moves (0 = blank, 1 = label)."""
    for labels_at in itertools.combinations(range(T + U - 1), U):
        yield tuple(1 if i in labels_at else 0 for i in range(T + U - 1)) + (0,)


def brute_force(log_probs: torch.Tensor, target: list[int], blank: int = 0):
    """``ln Pr(y|x)`` by summing every alignment, and the posterior count of every transition
    ``(T, U+1, V)``, from ``log_probs (T, U+1, V)`` with autograd on its inputs."""
    T, U = log_probs.shape[0], len(target)
    paths = []
    for moves in alignments(T, U):
        t = u = 0
        score = log_probs.new_zeros(())
        for move in moves:
            if move:
                score = score + log_probs[t, u, target[u]]
                u += 1
            else:
                score = score + log_probs[t, u, blank]
                t += 1
        paths.append(score)
    return torch.logsumexp(torch.stack(paths), 0), len(paths)


@pytest.mark.parametrize("T, U", [(T, U) for T in range(1, 6) for U in range(0, 4)])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_loss_gradient_and_occupation_equal_brute_force(T, U, fused):
    torch.manual_seed(10 * T + U)
    V = 4
    logits = torch.randn(1, T, U + 1, V, dtype=torch.float64, requires_grad=True)
    target = torch.randint(1, V, (1, U))
    inputs = logits if fused else logits.log_softmax(-1)
    loss = rnnt_loss(inputs, target, torch.tensor([T]), torch.tensor([U]), reduction="sum", fused_log_softmax=fused)
    want, count = brute_force(logits.log_softmax(-1)[0], target[0].tolist())
    assert count == math.comb(T + U - 1, U)
    torch.testing.assert_close(loss, -want)
    (g,) = torch.autograd.grad(loss, logits)
    (g_want,) = torch.autograd.grad(-want, logits)
    torch.testing.assert_close(g, g_want)
    # the occupation: d ln Pr / d ln Pr(k|t,u) is the posterior count of transition k at (t, u)
    lp = logits.detach().log_softmax(-1).requires_grad_(True)
    (counts,) = torch.autograd.grad(brute_force(lp[0], target[0].tolist())[0], lp)
    occ = occupation(logits.detach(), target, [T], [U])
    torch.testing.assert_close(occ.blank[0], counts[0, :, :, 0])
    label_counts = counts[0, :, :U].gather(2, target[0].view(1, U, 1).expand(T, U, 1)).squeeze(2)
    torch.testing.assert_close(occ.label[0, :, :U], label_counts)
    torch.testing.assert_close(occ.node.sum(), torch.tensor(T + U, dtype=torch.float64))


def test_the_classic_test_vector_of_the_transducer_libraries():
    """warp-transducer's small_test (also warp-rnnt's and NeMo's): 1 x 2 x 3 x 5 activations,
    labels (1, 2), blank 0; cost 4.495666 and the published gradients with respect to the
    log-probabilities (warp-transducer, warp-rnnt) and to the logits (NeMo)."""
    acts = torch.tensor([[[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.6, 0.1, 0.1], [0.1, 0.1, 0.2, 0.8, 0.1]],
                         [[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.1, 0.1], [0.7, 0.1, 0.2, 0.1, 0.1]]])[None]
    grad_log_probs = torch.tensor([
        [[-0.308198071906, -0.6918019280939998, 0.0, 0.0, 0.0], [-0.308198071906, 0.0, -0.3836038561880001, 0.0, 0.0],
         [-0.3836038561880001, 0.0, 0.0, 0.0, 0.0]],
        [[0.0, -0.308198071906, 0.0, 0.0, 0.0], [0.0, 0.0, -0.6163961438119995, 0.0, 0.0],
         [-0.9999999999999991, 0.0, 0.0, 0.0, 0.0]]])[None]
    grad_logits = torch.tensor([
        [[-0.13116688, -0.3999269, 0.17703125, 0.17703125, 0.17703125],
         [-0.18572757, 0.12247056, -0.18168412, 0.12247056, 0.12247056],
         [-0.32091254, 0.06269141, 0.06928472, 0.12624499, 0.06269141]],
        [[0.05456069, -0.21824276, 0.05456069, 0.05456069, 0.05456069],
         [0.12073959, 0.12073959, -0.48295835, 0.12073959, 0.12073959],
         [-0.6925882, 0.16871116, 0.18645467, 0.16871116, 0.16871116]]])[None]
    args = torch.tensor([[1, 2]]), torch.tensor([2]), torch.tensor([2])
    for dtype in (torch.float32, torch.float64):
        logits = acts.to(dtype).clone().requires_grad_(True)
        loss = rnnt_loss(logits, *args, reduction="sum")
        assert abs(loss.item() - 4.495666) < 1e-5
        loss.backward()
        torch.testing.assert_close(logits.grad, grad_logits.to(dtype), atol=1e-6, rtol=1e-5)
        log_probs = acts.to(dtype).log_softmax(-1).requires_grad_(True)
        rnnt_loss(log_probs, *args, reduction="sum", fused_log_softmax=False).backward()
        torch.testing.assert_close(log_probs.grad, grad_log_probs.to(dtype), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_gradcheck_float64(fused):
    torch.manual_seed(3)
    logits = torch.randn(3, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    targets, T_lens, U_lens = torch.tensor([[1, 2, 3], [4, 4, 0], [2, 0, 0]]), torch.tensor([4, 3, 2]), torch.tensor([3, 2, 1])

    def f(z):
        return rnnt_loss(z if fused else z.log_softmax(-1), targets, T_lens, U_lens, reduction="none",
                         fused_log_softmax=fused)

    assert torch.autograd.gradcheck(f, (logits,))


def test_fused_equals_log_softmax_then_unfused():
    torch.manual_seed(4)
    logits = torch.randn(2, 6, 4, 7, dtype=torch.float64, requires_grad=True)
    args = torch.tensor([[1, 5, 6], [3, 3, 0]]), torch.tensor([6, 4]), torch.tensor([3, 2])
    fused = rnnt_loss(logits, *args, reduction="none")
    unfused = rnnt_loss(logits.log_softmax(-1), *args, reduction="none", fused_log_softmax=False)
    torch.testing.assert_close(fused, unfused)
    g = torch.tensor([0.3, 1.7], dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(fused, logits, g)[0], torch.autograd.grad(unfused, logits, g)[0])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_padded_batch_equals_one_by_one_with_junk_in_the_padding(fused):
    torch.manual_seed(5)
    T_lens, U_lens = torch.tensor([7, 3, 5, 2]), torch.tensor([2, 4, 0, 5])   # U > T in two of them
    targets = torch.randint(1, 6, (4, 5))
    logits = torch.randn(4, 7, 6, 6, dtype=torch.float64)
    if not fused:
        logits = logits.log_softmax(-1)
    for b in range(4):
        logits[b, T_lens[b]:] = float("nan")             # junk beyond each length
        logits[b, :, U_lens[b] + 1:] = float("inf")
        targets[b, U_lens[b]:] = -7                       # not even a label
    logits.requires_grad_(True)
    losses = rnnt_loss(logits, targets, T_lens, U_lens, reduction="none", fused_log_softmax=fused)
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    assert torch.isfinite(losses).all() and torch.isfinite(grad).all()
    for b in range(4):
        T, U = int(T_lens[b]), int(U_lens[b])
        alone = logits[b : b + 1, :T, : U + 1].detach().requires_grad_(True)
        loss = rnnt_loss(alone, targets[b : b + 1, :U], torch.tensor([T]), torch.tensor([U]), reduction="sum",
                         fused_log_softmax=fused)
        torch.testing.assert_close(losses[b], loss)
        torch.testing.assert_close(grad[b, :T, : U + 1], torch.autograd.grad(loss, alone)[0][0])
        assert (grad[b, T:] == 0).all() and (grad[b, :, U + 1 :] == 0).all()


def test_reductions_and_invariance_to_a_constant_added_to_a_node():
    torch.manual_seed(6)
    logits = torch.randn(3, 5, 3, 4, dtype=torch.float64)
    args = torch.tensor([[1, 2], [3, 0], [2, 2]]), torch.tensor([5, 4, 2]), torch.tensor([2, 1, 2])
    none = rnnt_loss(logits, *args, reduction="none")
    torch.testing.assert_close(rnnt_loss(logits, *args, reduction="sum"), none.sum())
    torch.testing.assert_close(rnnt_loss(logits, *args), none.mean())          # torchaudio's mean: over the batch
    shifted = logits + 10 * torch.randn(3, 5, 3, 1, dtype=torch.float64)       # a constant per node, over V
    torch.testing.assert_close(rnnt_loss(shifted, *args, reduction="none"), none)


def test_float32_agrees_with_float64_on_a_long_utterance():
    """300 frames and 40 labels: the running sums of a column stay exact (they are float64)."""
    torch.manual_seed(7)
    logits = torch.randn(2, 300, 41, 8)
    targets = torch.randint(1, 8, (2, 40))
    args = targets, torch.tensor([300, 250]), torch.tensor([40, 33])
    l32 = rnnt_loss(logits, *args, reduction="none")
    l64 = rnnt_loss(logits.double(), *args, reduction="none")
    torch.testing.assert_close(l32.double(), l64, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("call, message", [
    (lambda z, y, t, u: rnnt_loss(z[0], y, t, u), r"logits must have shape \(B, T, U\+1, V\)"),
    (lambda z, y, t, u: rnnt_loss(z, y[:, :1], t, u), r"targets must have shape \(B, U\) = \(2, 2\)"),
    (lambda z, y, t, u: rnnt_loss(z, y, torch.tensor([4, 5]), u), r"logit_lengths must lie in 1..4"),
    (lambda z, y, t, u: rnnt_loss(z, y, torch.tensor([4, 0]), u), r"T = 0 has no alignment"),
    (lambda z, y, t, u: rnnt_loss(z, y, t, torch.tensor([3, 1])), r"target_lengths must lie in 0..2"),
    (lambda z, y, t, u: rnnt_loss(z, y, t.float(), u), r"logit_lengths must be an integer tensor of shape \(2,\)"),
    (lambda z, y, t, u: rnnt_loss(z, torch.tensor([[1, 0], [2, 3]]), t, u), r"targets\[0, 1\] = 0 is not a label"),
    (lambda z, y, t, u: rnnt_loss(z, torch.tensor([[1, 5], [2, 3]]), t, u), r"targets\[0, 1\] = 5 is not a label"),
    (lambda z, y, t, u: rnnt_loss(z, y, t, u, reduction="avg"), r"unknown reduction 'avg'"),
    (lambda z, y, t, u: rnnt_loss(z, y, t, u, blank=5), r"blank must lie in 0..4"),
    (lambda z, y, t, u: rnnt_loss(z.long(), y, t, u), r"float32 or float64"),
])
def test_bad_input_names_the_problem(call, message):
    logits = torch.randn(2, 4, 3, 5)
    with pytest.raises(ValueError, match=message):
        call(logits, torch.tensor([[1, 2], [3, 4]]), torch.tensor([4, 3]), torch.tensor([2, 2]))


def test_blank_may_be_counted_from_the_end_as_in_torchaudio():
    torch.manual_seed(8)
    logits = torch.randn(1, 3, 3, 5, dtype=torch.float64)
    args = torch.tensor([3]), torch.tensor([2])
    torch.testing.assert_close(rnnt_loss(logits, torch.tensor([[0, 2]]), *args, blank=-1),
                               rnnt_loss(logits.roll(1, -1), torch.tensor([[1, 3]]), *args, blank=0))


def test_viterbi_is_the_best_of_every_alignment():
    torch.manual_seed(9)
    T, U, V = 5, 3, 4
    for _ in range(5):
        logits = torch.randn(T, U + 1, V, dtype=torch.float64)
        target = torch.randint(1, V, (U,))
        lp = logits.log_softmax(-1)
        best, best_frames = -math.inf, None
        for moves in alignments(T, U):
            t = u = 0
            score, frames = 0.0, []
            for move in moves:
                if move:
                    score += float(lp[t, u, target[u]])
                    frames.append(t)
                    u += 1
                else:
                    score += float(lp[t, u, 0])
                    t += 1
            if score > best:
                best, best_frames = score, frames
        frames, score = viterbi(logits, target)
        assert frames.tolist() == best_frames and abs(score - best) < 1e-9


@pytest.mark.cuda
def test_cuda_equals_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(11)
    logits = torch.randn(3, 20, 6, 9, requires_grad=True)
    args = torch.randint(1, 9, (3, 5)), torch.tensor([20, 17, 9]), torch.tensor([5, 3, 4])
    cpu = rnnt_loss(logits, *args, reduction="none")
    (g_cpu,) = torch.autograd.grad(cpu.sum(), logits)
    gpu_logits = logits.detach().cuda().requires_grad_(True)
    gpu = rnnt_loss(gpu_logits, *(a.cuda() for a in args), reduction="none")
    (g_gpu,) = torch.autograd.grad(gpu.sum(), gpu_logits)
    torch.testing.assert_close(gpu.cpu(), cpu)
    torch.testing.assert_close(g_gpu.cpu(), g_cpu)


def test_the_2012_joint_adds_two_output_layers_and_counts_its_weights():
    from asrlib.transducer import Transducer

    torch.manual_seed(12)
    paper = Transducer("lstm", 4, 8, 1, 6)
    old = Transducer("lstm", 4, 8, 1, 6, joint="graves2012")
    x, y = torch.randn(2, 5, 4), torch.tensor([[3, 1], [2, 0]])
    f, p = old.encode(x), old.predict(y)
    logits = old(x, torch.tensor([5, 3]), y, torch.tensor([2, 1]))
    torch.testing.assert_close(logits[0, 4, 2], f[0, 4] + old.to_g(p[0, 2]))
    shared = sum(t.numel() for t in (*paper.encoder.parameters(), *paper.prediction.parameters()))
    count = lambda m: sum(t.numel() for t in m.parameters())  # noqa: E731
    assert count(paper) - shared == (16 * 8 + 8) + (8 * 8 + 8) + 8 * 8 + (8 * 6 + 6)   # eq. 15-17
    assert count(old) - shared == (16 * 6 + 6) + (8 * 6 + 6)
    with pytest.raises(ValueError, match="unknown joint 'sum'"):
        Transducer("lstm", 4, 8, 1, 6, joint="sum")


def test_blank_prior_gives_the_blank_its_share_of_an_alignment():
    torch.manual_seed(13)
    for joint in ("paper", "graves2012"):
        model = Transducer("lstm", 4, 8, 1, 11, joint=joint)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()                                   # every output 1/V before the prior
            model.init_blank_prior_(frames_per_phone=3.0)
            probs = model(torch.randn(1, 6, 4), torch.tensor([6]), torch.tensor([[1, 2]]), torch.tensor([2])).softmax(-1)
        torch.testing.assert_close(probs[..., 0], torch.full((1, 6, 3), 3.0 / 4.0))   # T / (T + U) per phone
    with pytest.raises(ValueError, match="frames_per_phone"):
        model.init_blank_prior_(0)
