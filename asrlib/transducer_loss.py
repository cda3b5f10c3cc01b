"""The RNN transducer loss from scratch: forward-backward over the T x (U+1) lattice (section 3.2).

At every node (t, u) of the lattice (t frames read, u labels emitted) the network gives a
distribution ``Pr(k|t,u)`` over the V outputs. From node (t, u) a *blank* moves to (t+1, u)
and the next label ``y_{u+1}`` moves to (t, u+1); an alignment is a path from (0, 0) that ends
with a blank out of (T-1, U). Graves (2012) sums over all of them with forward variables
``alpha(t, u)`` (every path prefix into the node) and backward variables ``beta(t, u)`` (every
path suffix out of it, the final blank included):

    alpha(t, u) = logaddexp(alpha(t-1, u) + ln Pr(blank|t-1, u), alpha(t, u-1) + ln Pr(y_u|t, u-1))
    beta(t, u)  = logaddexp(beta(t+1, u) + ln Pr(blank|t, u),    beta(t, u+1) + ln Pr(y_{u+1}|t, u))

with ``alpha(0, 0) = 0``, ``beta(T-1, U) = ln Pr(blank|T-1, U)`` and
``ln Pr(y|x) = beta(0, 0) = alpha(T-1, U) + ln Pr(blank|T-1, U)``.

Vectorised by lattice *column*: within a column u the recursion along t is linear in
probability space, ``a(t) = a(t-1) b(t-1) + e(t)``, so its solution is a cumulative sum,
``a(t) = B(t) * sum_{k<=t} e(k) / B(k)`` with ``B`` the running product of blank
probabilities: one ``logcumsumexp`` per column, a Python loop over the U+1 columns only (not
over the T + U anti-diagonals). The running sums, alpha and beta (V times smaller than the
logits) are float64, where the sums stay exact.

The gradient is closed form. With ``gamma_k(t, u)`` the posterior probability that an
alignment takes transition k out of (t, u) (blank or ``y_{u+1}``), and
``gamma(t, u) = gamma_blank + gamma_label`` the node's occupation:

* with respect to the log-probabilities (``fused_log_softmax=False``): ``-gamma_k(t, u)``;
* with respect to the logits (``fused_log_softmax=True``, the default, as torchaudio's
  "function merging"): ``softmax(z_{t,u}) gamma(t, u) - gamma_k(t, u)``, built in place in
  the gradient's own buffer, so that the B x T x (U+1) x V log-softmax is never stored.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

REDUCTIONS = ("none", "sum", "mean")
NEG_INF = float("-inf")
# A log-probability below this counts as this: e^-10000 is zero in any float, and finite
# values keep the running sums of a column free of (-inf) - (-inf).
MIN_LOG_PROB = -1e4
CHUNKS = 32  # the fused log-softmax's normaliser is taken over T in this many pieces


class Lattice(NamedTuple):
    """The transducer lattice of a batch, ``(B, T, U+1)`` each: the log-probabilities of the two
    transitions out of every node (the logits' dtype), ``alpha`` and ``beta`` (float64),
    ``ln Pr(y|x)`` ``(B,)``, the mask of each utterance's own lattice (``t < T_b``,
    ``u <= U_b``) and of its last node."""

    blank: torch.Tensor
    label: torch.Tensor
    log_alpha: torch.Tensor
    log_beta: torch.Tensor
    log_p: torch.Tensor
    valid: torch.Tensor
    final: torch.Tensor


def check_inputs(logits, targets, logit_lengths, target_lengths, blank: int = 0):
    """Validate the arguments of :func:`rnnt_loss`; return targets and lengths as long tensors on
    the logits' device and the blank as an index in 0..V-1. Every fault is a ValueError that
    names it."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape (B, T, U+1, V), got {shape}")
    if logits.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"logits must be float32 or float64, got {logits.dtype}")
    B, T, U1, V = logits.shape
    if not isinstance(targets, torch.Tensor) or targets.ndim != 2 or targets.shape[0] != B or targets.shape[1] != U1 - 1:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must have shape (B, U) = ({B}, {U1 - 1}) to match logits {tuple(logits.shape)}, "
                         f"got {shape}")
    if targets.is_floating_point():
        raise ValueError(f"targets must be integers, got {targets.dtype}")
    lengths = []
    for name, lens, most, least in (("logit_lengths", logit_lengths, T, 1), ("target_lengths", target_lengths, U1 - 1, 0)):
        lens = torch.as_tensor(lens)
        if lens.shape != (B,) or lens.is_floating_point():
            raise ValueError(f"{name} must be an integer tensor of shape ({B},), got {tuple(lens.shape)} {lens.dtype}")
        if B and (int(lens.min()) < least or int(lens.max()) > most):
            what = "frames (T = 0 has no alignment)" if least else "labels"
            raise ValueError(f"{name} must lie in {least}..{most} {what}, got {lens.tolist()}")
        lengths.append(lens.to(device=logits.device, dtype=torch.long))
    if not -V <= blank < V:
        raise ValueError(f"blank must lie in 0..{V - 1} (or -{V}..-1 from the end), got {blank}")
    blank = blank % V
    targets = targets.to(device=logits.device, dtype=torch.long)
    real = torch.arange(U1 - 1, device=logits.device) < lengths[1].unsqueeze(1)
    bad = real & ((targets < 0) | (targets >= V) | (targets == blank))
    if bad.any():
        b, u = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"targets[{b}, {u}] = {int(targets[b, u])} is not a label: labels lie in 0..{V - 1} "
                         f"without the blank {blank}")
    return torch.where(real, targets, blank), lengths[0], lengths[1], blank


def _log_normaliser(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over V, ``(B, T, U+1)``, in pieces along T: its temporaries are a fraction of
    the logits, not a second copy of them. Each piece goes through torch's one-pass log-softmax
    kernel (``z_0 - log_softmax(z)_0`` is the normaliser), faster than ``logsumexp``'s five."""
    step = max(1, -(-logits.shape[1] // CHUNKS))
    return torch.cat([piece[..., 0] - torch.log_softmax(piece, -1)[..., 0] for piece in logits.split(step, dim=1)], 1)


def _rev_logcumsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[t] = logsumexp(x[t:])`` along ``dim``."""
    return torch.logcumsumexp(x.flip(dim), dim).flip(dim)


def lattice(logits, targets, logit_lengths, target_lengths, blank: int, fused: bool, lse=None) -> Lattice:
    """Alpha, beta and ``ln Pr(y|x)`` on arguments checked by :func:`check_inputs` (no gradient).
    ``lse`` is the logits' log-softmax normaliser when ``fused`` (computed when not given).

    Inside, every lattice tensor is laid out by column, ``(B, U+1, T)``, so that a column is
    contiguous; the transition log-probabilities stay in the logits' dtype and the running sums,
    alpha and beta are float64. The returned tensors are ``(B, T, U+1)`` views of them."""
    logits = logits.detach()
    B, T, U1, V = logits.shape
    dev = logits.device
    index = torch.cat([targets, targets.new_full((B, 1), blank)], 1)            # (B, U+1): y_{u+1}, blank at U
    label = logits.gather(3, index[:, None, :, None].expand(B, T, U1, 1)).squeeze(3)
    blank_lp = logits[..., blank]
    if fused:
        lse = _log_normaliser(logits) if lse is None else lse
        label, blank_lp = label - lse, blank_lp - lse
    u = torch.arange(U1, device=dev).view(1, U1, 1)
    t = torch.arange(T, device=dev).view(1, 1, T)
    T_b, U_b = logit_lengths.view(B, 1, 1), target_lengths.view(B, 1, 1)
    valid = (t < T_b) & (u <= U_b)                                              # (B, U+1, T)
    column_major = dict(memory_format=torch.contiguous_format)                 # a copy, never the input itself
    blank_lp = blank_lp.transpose(1, 2).clone(**column_major).masked_fill_(~valid, 0.0).clamp_(min=MIN_LOG_PROB)
    label = label.transpose(1, 2).clone(**column_major).masked_fill_(~(valid & (u < U_b)), 0.0).clamp_(min=MIN_LOG_PROB)

    # alpha, column by column: a(t) = C(t) + logcumsumexp_k(e(k) - C(k)), C(t) = sum_{j<t} blank(j)
    run = blank_lp.cumsum(2, dtype=torch.float64)
    total = run[:, :, -1:].clone()
    run = run.sub_(blank_lp)                                                     # exclusive: sum_{j<t}
    log_alpha = torch.empty_like(run)
    enter = torch.full_like(run[:, 0], NEG_INF)
    enter[:, 0] = 0.0                                                            # alpha(0, 0) = 0
    for col in range(U1):
        if col:
            enter = log_alpha[:, col - 1] + label[:, col - 1]
        log_alpha[:, col] = torch.logcumsumexp(enter - run[:, col], 1).add_(run[:, col])
    log_alpha.masked_fill_(~valid, NEG_INF)

    # beta, from the last column back: b(t) = D(t) + logsumexp_{k>=t}(e(k) - D(k)), D(t) = sum_{j>=t} blank(j)
    final = (t == T_b - 1) & (u == U_b)                                          # the final blank leaves here
    run = run.neg_().add_(total)                                                 # D = total - C, in place
    log_beta = torch.empty_like(run)
    for col in range(U1 - 1, -1, -1):
        leave = torch.where(final[:, col], blank_lp[:, col].double(), NEG_INF)
        if col + 1 < U1:
            leave = torch.logaddexp(leave, log_beta[:, col + 1] + label[:, col])
        log_beta[:, col] = _rev_logcumsumexp(leave - run[:, col], 1).add_(run[:, col])
    log_beta.masked_fill_(~valid, NEG_INF)
    del run

    batch = torch.arange(B, device=dev)
    last = (batch, target_lengths, logit_lengths - 1)
    log_p = log_alpha[last] + blank_lp[last].double()
    view = lambda x: x.transpose(1, 2)  # noqa: E731
    return Lattice(view(blank_lp), view(label), view(log_alpha), view(log_beta), log_p, view(valid), view(final))


def transition_posteriors(lat: Lattice, reuse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gamma_blank, gamma_label)``, each ``(B, T, U+1)`` float64: the posterior probability that
    an alignment takes the blank (the final blank included) or the label out of each node.
    ``reuse=True`` computes them in the buffers of ``lat.log_alpha`` and ``lat.log_beta``, which
    are then gone (the loss's forward pass: no new lattice-sized memory)."""
    alpha, beta = lat.log_alpha.transpose(1, 2), lat.log_beta.transpose(1, 2)   # (B, U+1, T), contiguous
    B, U1, T = alpha.shape
    norm = lat.log_p.view(B, 1, 1)
    after_blank = torch.empty_like(beta)
    after_blank[:, :, :-1] = beta[:, :, 1:]
    after_blank[:, :, -1] = NEG_INF
    after_blank.masked_fill_(lat.final.transpose(1, 2), 0.0)                    # the final blank ends the path
    gamma_blank = after_blank.add_(alpha).add_(lat.blank.transpose(1, 2)).sub_(norm).exp_()
    after_label = beta if reuse else beta.clone()                               # beta(t, u+1): shift a column
    for col in range(U1 - 1):
        after_label[:, col] = after_label[:, col + 1]
    after_label[:, -1] = NEG_INF
    gamma_label = after_label.add_(alpha).add_(lat.label.transpose(1, 2)).sub_(norm).exp_()
    return gamma_blank.transpose(1, 2), gamma_label.transpose(1, 2)


class Occupation(NamedTuple):
    """Posteriors over the lattice, ``(B, T, U+1)`` each: of every node, of its blank and of its
    label transition."""

    node: torch.Tensor
    blank: torch.Tensor
    label: torch.Tensor


@torch.no_grad()
def occupation(logits, targets, logit_lengths, target_lengths, blank: int = 0, fused_log_softmax: bool = True) -> Occupation:
    """Where the probability mass of the alignments flows: the posterior of every node of the
    lattice and of each transition out of it (for the book's figures). Every alignment visits
    exactly T + U nodes, so each utterance's node posteriors sum to T_b + U_b."""
    targets, T_lens, U_lens, blank = check_inputs(logits, targets, logit_lengths, target_lengths, blank)
    g_blank, g_label = transition_posteriors(lattice(logits, targets, T_lens, U_lens, blank, fused_log_softmax))
    return Occupation(g_blank + g_label, g_blank, g_label)


class _RNNTLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, logit_lengths, target_lengths, blank, fused):
        lse = _log_normaliser(logits.detach()) if fused else None
        lat = lattice(logits, targets, logit_lengths, target_lengths, blank, fused, lse)
        loss = -lat.log_p.to(logits.dtype)
        if logits.requires_grad:
            g_blank, g_label = (g.to(logits.dtype) for g in transition_posteriors(lat, reuse=True))
            ctx.save_for_backward(logits, lse, targets, g_blank, g_label, lat.valid)
        ctx.blank, ctx.fused = blank, fused
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        logits, lse, targets, g_blank, g_label, valid = ctx.saved_tensors
        B, T, U1, V = logits.shape
        scale = grad_out.to(logits.dtype).view(B, 1, 1)
        g_blank, g_label = g_blank * scale, g_label * scale
        if ctx.fused:                         # softmax(z) gamma - gamma_k, in the gradient's own buffer
            grad = torch.sub(logits, lse.unsqueeze(-1), out=torch.empty_like(logits)).exp_()
            grad.mul_((g_blank + g_label).unsqueeze(-1))
        else:
            grad = torch.zeros_like(logits)
        grad[..., ctx.blank] -= g_blank
        index = torch.cat([targets, targets.new_full((B, 1), ctx.blank)], 1)
        grad.scatter_add_(3, index[:, None, :, None].expand(B, T, U1, 1), -g_label.unsqueeze(-1))
        grad.masked_fill_(~valid.unsqueeze(-1), 0.0)            # padding: no gradient, whatever it holds
        return grad, None, None, None, None, None


def rnnt_loss(
    logits: torch.Tensor, targets: torch.Tensor, logit_lengths: torch.Tensor, target_lengths: torch.Tensor,
    blank: int = 0, reduction: str = "mean", fused_log_softmax: bool = True,
) -> torch.Tensor:
    """The RNN transducer loss ``-ln Pr(y|x)``, with torchaudio's call and layout.

    Parameters
    ----------
    logits : Tensor, shape (B, T, U+1, V)
        The joint network's outputs at every node (float32 or float64, any device). With
        ``fused_log_softmax=False`` they must already be log-probabilities.
    targets : Tensor, shape (B, U)
        Labels in 0..V-1 without the blank; padding after each length is ignored.
    logit_lengths, target_lengths : Tensor, shape (B,)
        T_b in 1..T and U_b in 0..U.
    blank : int
        The blank's index. 0 as everywhere in this book (torchaudio's default is -1, the last).
    reduction : str
        ``"none"`` (B,), ``"sum"``, or ``"mean"`` over the batch (as torchaudio).
    fused_log_softmax : bool
        Take the log-softmax inside the loss, and the gradient with respect to the logits in
        closed form, without storing the log-probabilities.

    Bad input raises a ValueError that names the problem; padding never changes a result.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    targets, T_lens, U_lens, blank = check_inputs(logits, targets, logit_lengths, target_lengths, blank)
    losses = _RNNTLoss.apply(logits, targets, T_lens, U_lens, blank, bool(fused_log_softmax))
    return losses if reduction == "none" else losses.sum() if reduction == "sum" else losses.mean()


@torch.no_grad()
def viterbi(logits: torch.Tensor, target: torch.Tensor, blank: int = 0, fused_log_softmax: bool = True):
    """The most probable alignment of one utterance: ``logits (T, U+1, V)``, ``target (U,)``.

    Returns ``(frames, log_prob)``: ``frames (U,)``, the frame at which each label is emitted
    (non-decreasing: several labels may leave the same frame), and the alignment's log
    probability. The max-plus twin of the forward recursion, a cumulative maximum per column.
    """
    if logits.ndim != 3 or target.ndim != 1:
        raise ValueError(f"viterbi takes one utterance: logits (T, U+1, V) and target (U,), "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    T, U1, _ = logits.shape
    targets, T_lens, U_lens, blank = check_inputs(logits[None], target[None], [T], [U1 - 1], blank)
    lat = lattice(logits[None], targets, T_lens, U_lens, blank, fused_log_softmax)
    blank_lp, label = lat.blank[0].double(), lat.label[0].double()
    run = torch.cat([torch.zeros_like(blank_lp[:1]), blank_lp[:-1].cumsum(0)], 0)
    score = torch.full_like(blank_lp, NEG_INF)
    entry = torch.zeros(T, U1, dtype=torch.long)        # the frame at which column u was entered
    enter = torch.full_like(blank_lp[:, 0], NEG_INF)
    enter[0] = 0.0
    for col in range(U1):
        if col:
            enter = score[:, col - 1] + label[:, col - 1]
        best, where = torch.cummax(enter - run[:, col], 0)
        score[:, col] = run[:, col] + best
        entry[:, col] = where.cpu()
    frames, t = [], T - 1
    for col in range(U1 - 1, 0, -1):                   # label col was emitted where column col was entered
        t = int(entry[t, col])
        frames.append(t)
    return torch.tensor(frames[::-1], dtype=torch.long), float(score[T - 1, U1 - 1] + blank_lp[T - 1, U1 - 1])
