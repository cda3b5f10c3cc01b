"""Connectionist temporal classification (section 3.1, eq. 13-14), from scratch in log space.

CTC scores a label sequence ``z`` (phones, no blanks) given per-frame output distributions
``Pr(k|t)`` by summing over every *alignment*: every frame-by-frame path of labels and blanks
that the collapsing map B (merge repeats, then drop blanks) turns into ``z``. The sum runs over
the trellis of the *extended* sequence ``z'``: ``z`` with a blank before, between and after its
labels, S = 2U + 1 states.

* the forward variables ``alpha_t(s)``: all path prefixes up to frame t that end in state s;
* the backward variables ``beta_t(s)``: all path suffixes from state s at frame t;
* ``Pr(z|x) = sum_s alpha_t(s) beta_t(s) / Pr(z'_s|t)`` at any t, and the gradient of
  ``-ln Pr(z|x)`` with respect to ``ln Pr(k|t)`` is minus the *occupation* of label k at t:
  the share of the probability of all alignments that emit k at frame t.

Both recursions are vectorised over the batch and the states; only time is a loop. The
gradient is the closed form above, in a custom autograd function, not autograd through the
recursion (which would store T copies of the trellis' intermediate sums).

``ctc_loss`` follows ``torch.nn.functional.ctc_loss``: the same arguments, shapes, reductions and
``zero_infinity``. One difference: torch's backward returns ``exp(log_probs) - occupation``, the
gradient with respect to the *logits* of a ``log_softmax``, which equals the true gradient only
after flowing back through that ``log_softmax``; ours returns the true gradient ``-occupation``
with respect to ``log_probs``, so ``gradcheck`` holds on it directly. Through ``log_softmax``
the two agree (tested).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from asrlib import native

REDUCTIONS = ("none", "sum", "mean")
NEG_INF = float("-inf")


class Trellis(NamedTuple):
    """The forward-backward quantities of a batch, all in log space.

    ``log_alpha, log_beta : (T, B, S)``, ``log_p : (B,)`` (``ln Pr(z|x)``), ``states : (B, S)``
    (the extended label sequences ``z'``, padded with the blank), ``input_lengths`` and
    ``target_lengths : (B,)``.
    """

    log_alpha: torch.Tensor
    log_beta: torch.Tensor
    log_p: torch.Tensor
    states: torch.Tensor
    input_lengths: torch.Tensor
    target_lengths: torch.Tensor


def _as_lengths(lengths, B: int, name: str, device) -> torch.Tensor:
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.shape != (B,) or lengths.is_floating_point():
        raise ValueError(f"{name} must be {B} integers, got shape {tuple(lengths.shape)} ({lengths.dtype})")
    return lengths.long()


def check_inputs(log_probs, targets, input_lengths, target_lengths, blank: int = 0):
    """Validate ``F.ctc_loss``-style arguments; return ``(log_probs (T, B, V), targets (B, U)
    padded, input_lengths, target_lengths)`` with lengths as long tensors on the device."""
    if log_probs.ndim == 2:  # one unbatched sequence (T, V), lengths scalars, as torch allows
        log_probs = log_probs.unsqueeze(1)
        targets = targets.reshape(1, -1)
        input_lengths, target_lengths = (torch.as_tensor(n).reshape(-1) for n in (input_lengths, target_lengths))
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must have shape (T, B, V), got {tuple(log_probs.shape)}")
    T, B, V = log_probs.shape
    if not 0 <= blank < V:
        raise ValueError(f"blank must lie in 0..{V - 1}, got {blank}")
    input_lengths = _as_lengths(input_lengths, B, "input_lengths", log_probs.device)
    target_lengths = _as_lengths(target_lengths, B, "target_lengths", log_probs.device)
    if B and (int(input_lengths.min()) < 0 or int(input_lengths.max()) > T):
        raise ValueError(f"input_lengths must lie in 0..{T} (the frames of log_probs), got {input_lengths.tolist()}")
    if B and int(target_lengths.min()) < 0:
        raise ValueError(f"target_lengths must not be negative, got {target_lengths.tolist()}")
    targets = targets.to(log_probs.device)
    if targets.ndim == 1:  # concatenated targets: cut them into a padded (B, U) tensor
        if int(target_lengths.sum()) != len(targets):
            raise ValueError(f"concatenated targets hold {len(targets)} labels but target_lengths sum to "
                             f"{int(target_lengths.sum())}")
        U = int(target_lengths.max()) if B else 0
        padded = targets.new_full((B, U), blank)
        for b, chunk in enumerate(targets.split(target_lengths.tolist())):
            padded[b, : len(chunk)] = chunk
        targets = padded
    if targets.ndim != 2 or targets.shape[0] != B:
        raise ValueError(f"targets must have shape (B={B}, U) or be concatenated (sum of target_lengths,), "
                         f"got {tuple(targets.shape)}")
    if B and int(target_lengths.max()) > targets.shape[1]:
        raise ValueError(f"target_lengths {target_lengths.tolist()} exceed the targets' width {targets.shape[1]}")
    real = torch.arange(targets.shape[1], device=targets.device) < target_lengths.unsqueeze(1)
    labels = targets[real]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= V):
        raise ValueError(f"target labels must lie in 0..{V - 1}, the blank ({blank}) excepted; got "
                         f"{int(labels.min())}..{int(labels.max())}")
    if (labels == blank).any():
        raise ValueError(f"targets contain the blank ({blank}) within their lengths")
    return log_probs, targets.long(), input_lengths, target_lengths


def min_frames(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """The fewest frames that can emit each target: U plus one blank between every repeated
    pair. An utterance with fewer frames has no alignment (``Pr(z|x) = 0``, loss infinite)."""
    targets = targets.reshape(len(target_lengths), -1)
    U = targets.shape[1]
    if U < 2:
        return target_lengths.clone()
    repeats = (targets[:, 1:] == targets[:, :-1]) & (torch.arange(1, U, device=targets.device) < target_lengths.unsqueeze(1))
    return target_lengths + repeats.sum(1)


def extend(targets: torch.Tensor, target_lengths: torch.Tensor, blank: int = 0):
    """``z -> z'``: ``(B, U)`` labels to ``(B, 2U + 1)`` states with blanks around every label,
    and the mask of states that may be entered by skipping the state before (``z'_s`` not blank
    and not equal to ``z'_{s-2}``)."""
    B, U = targets.shape
    states = targets.new_full((B, 2 * U + 1), blank)
    states[:, 1::2] = targets
    skip = torch.zeros_like(states, dtype=torch.bool)
    skip[:, 2:] = (states[:, 2:] != blank) & (states[:, 2:] != states[:, :-2])
    return states, skip


def _shift(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x[..., s - n]`` with -inf shifted in (n > 0) or ``x[..., s + |n|]`` (n < 0)."""
    out = torch.full_like(x, NEG_INF)
    if n > 0:
        out[..., n:] = x[..., :-n]
    else:
        out[..., :n] = x[..., -n:]
    return out


def forward_backward(log_probs, targets, input_lengths, target_lengths, blank: int = 0, compiled=None) -> Trellis:
    """The CTC trellis: ``alpha``, ``beta`` and ``ln Pr(z|x)`` for a batch (no gradient).

    Shapes as :func:`ctc_loss`. Both variables include the emission at their own frame, so
    ``alpha_t(s) + beta_t(s) - ln Pr(z'_s|t)`` is the log probability of all alignments through
    state s at frame t. Frames past an utterance's length hold -inf. ``compiled``: as :func:`alpha_beta`.
    """
    return alpha_beta(*check_inputs(log_probs, targets, input_lengths, target_lengths, blank), blank, compiled)


def alpha_beta(log_probs, targets, input_lengths, target_lengths, blank: int, compiled=None) -> Trellis:
    """:func:`alpha_beta_loop`, or the same recursions by the compiled kernel
    :func:`asrlib.native.ctc_trellis` (``compiled=None``: wherever it serves, a CPU)."""
    if native.use_ctc_kernel(log_probs, compiled):
        return _by_kernel(log_probs, targets, input_lengths, target_lengths, blank, False)[0]
    return alpha_beta_loop(log_probs, targets, input_lengths, target_lengths, blank)


def _by_kernel(log_probs, targets, input_lengths, target_lengths, blank: int, with_gamma: bool):
    """The trellis, and the occupation if ``with_gamma`` (else None), from the compiled kernel."""
    states, _ = extend(targets, target_lengths, blank)
    alpha, beta, log_p, gamma = native.ctc_trellis(log_probs, states, input_lengths, target_lengths, with_gamma)
    return Trellis(alpha, beta, log_p, states, input_lengths, target_lengths), gamma


def alpha_beta_loop(log_probs, targets, input_lengths, target_lengths, blank: int) -> Trellis:
    """The forward and backward recursions themselves (eq. 6-7 and 10-11 of Graves et al. 2006, in log
    space), vectorised over the batch and the states of z', a loop over the frames: what
    :func:`alpha_beta` runs on a GPU (or with ``compiled=False``) once its arguments are checked.

    The backward variables are the forward variables of the *reversed* problem: read each
    utterance's frames from its last to its first and its z' from the final blank to the first,
    and a path suffix from state s at frame t becomes a path prefix. So one loop over the frames
    runs both recursions, as one batch of 2B (half the steps of two loops), and each step is
    four elementwise operations on views of one buffer (``_forward``)."""
    log_probs = log_probs.detach()
    T, B, _ = log_probs.shape
    device = log_probs.device
    states, skip = extend(targets, target_lengths, blank)
    S = states.shape[1]
    s = torch.arange(S, device=device)
    t = torch.arange(T, device=device)
    last = 2 * target_lengths.unsqueeze(1)                # (B, 1): the final blank; the final label is last - 1
    real = (t.unsqueeze(1) < input_lengths).unsqueeze(2)  # (T, B, 1): frames inside each utterance
    valid = s <= last                                      # (B, S): states of each utterance's own z'
    outside = ~(real & valid)                              # (T, B, S): no such frame or state
    both_emit = log_probs.new_empty(T, 2 * B, S)           # the forward problem, then the reversed one
    emit = torch.gather(log_probs, 2, states.unsqueeze(0).expand(T, B, S), out=both_emit[:, :B])  # ln Pr(z'_s | t)
    emit.masked_fill_(outside, NEG_INF)
    # the reversed problem: frame t of utterance b is its frame len_b - 1 - t, state s its state last_b - s
    t_rev = (input_lengths - 1 - t.unsqueeze(1)).clamp(min=0)      # (T, B)
    s_rev = (last - s).clamp(min=0)                                 # (B, S)
    both_emit[:, B:] = _reverse(emit, t_rev, s_rev).masked_fill_(outside, NEG_INF)
    skip_rev = torch.zeros_like(skip)  # into s' = last - s from s' - 2: z'_s and z'_{s+2} both labels and different
    skip_rev[:, 2:] = skip.gather(1, (last - s[2:] + 2).clamp(min=0, max=S - 1)) & valid[:, 2:]
    both = _forward(both_emit, torch.cat([skip, skip_rev]))
    log_alpha = both[:, :B]
    log_beta = _reverse(both[:, B:], t_rev, s_rev).masked_fill_(outside, NEG_INF)

    idx = (input_lengths - 1).clamp(min=0)
    final = log_alpha[idx, torch.arange(B, device=device)]  # (B, S) at each last frame
    log_p = torch.logaddexp(final.gather(1, last).squeeze(1), final.gather(1, (last - 1).clamp(min=0)).squeeze(1))
    log_p = torch.where(target_lengths == 0, final.gather(1, last).squeeze(1), log_p)
    log_p = torch.where(input_lengths == 0, torch.where(target_lengths == 0, 0.0, NEG_INF), log_p)
    return Trellis(log_alpha, log_beta, log_p, states, input_lengths, target_lengths)


def _reverse(x: torch.Tensor, t_rev: torch.Tensor, s_rev: torch.Tensor) -> torch.Tensor:
    """``x[t_rev[t, b], b, s_rev[b, s]]`` for ``x : (T, B, S)``: two gathers (cheaper than one
    advanced index over three axes)."""
    T, B, S = x.shape
    return x.gather(0, t_rev.unsqueeze(2).expand(T, B, S)).gather(2, s_rev.unsqueeze(0).expand(T, B, S))


def _forward(emit: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``alpha`` for emissions ``emit : (T, N, S)`` (-inf where a state or frame does not exist) and
    the skip mask ``(N, S)``. The buffer keeps two columns of -inf in front of the states, so
    ``alpha_{t-1}(s - 1)`` and ``alpha_{t-1}(s - 2)`` are views, not shifted copies."""
    T, N, S = emit.shape
    out = emit.new_full((T, N, S + 2), NEG_INF)
    if T == 0:
        return out[:, :, 2:]
    skip_add = torch.zeros_like(skip, dtype=emit.dtype).masked_fill_(~skip, NEG_INF)
    out[0, :, 2:4] = emit[0, :, :2]  # a path starts in the first blank or the first label
    tmp, jump = emit.new_empty(N, S), emit.new_empty(N, S)
    # every frame's views, made once: the loop then only calls four elementwise kernels a frame
    stay, one, two = out[:, :, 2:].unbind(0), out[:, :, 1:-1].unbind(0), out[:, :, :-2].unbind(0)
    emit_t = emit.unbind(0)
    for t in range(1, T):
        torch.logaddexp(stay[t - 1], one[t - 1], out=tmp)               # stay, or come from s - 1
        torch.add(two[t - 1], skip_add, out=jump)                        # from s - 2, where allowed
        torch.logaddexp(tmp, jump, out=tmp)
        torch.add(tmp, emit_t[t], out=stay[t])                           # times Pr(z'_s | t)
    return out[:, :, 2:]


def state_posteriors(trellis: Trellis, log_probs: torch.Tensor) -> torch.Tensor:
    """``Pr(state s at frame t | z, x)``: ``(T, B, S)``, each real frame summing to 1 over s
    (0 where ``Pr(z|x) = 0``)."""
    T, B, S = trellis.log_alpha.shape
    if log_probs.ndim == 2:
        log_probs = log_probs.unsqueeze(1)
    emit = log_probs.detach().gather(2, trellis.states.unsqueeze(0).expand(T, B, S))
    log_post = trellis.log_alpha + trellis.log_beta - emit - trellis.log_p.view(1, B, 1)
    post = log_post.exp()
    return torch.where(torch.isfinite(trellis.log_p).view(1, B, 1), post.nan_to_num(0.0), torch.zeros_like(post))


def occupation(trellis: Trellis, log_probs: torch.Tensor) -> torch.Tensor:
    """``gamma_t(k)``: the posterior probability that frame t emits label k, ``(T, B, V)``.
    Minus the gradient of ``-ln Pr(z|x)`` with respect to ``ln Pr(k|t)``."""
    post = state_posteriors(trellis, log_probs)
    T, B, S = post.shape
    V = log_probs.shape[-1]
    gamma = post.new_zeros(T, B, V)
    return gamma.scatter_add_(2, trellis.states.unsqueeze(0).expand(T, B, S), post)


class _CTCLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, compiled):
        if native.use_ctc_kernel(log_probs, compiled):  # the occupation from the kernel too: (T, B, S) passes saved
            trellis, gamma = _by_kernel(log_probs, targets, input_lengths, target_lengths, blank, True)
        else:
            trellis = alpha_beta_loop(log_probs, targets, input_lengths, target_lengths, blank)  # checked by ctc_loss
            gamma = occupation(trellis, log_probs)
        ctx.save_for_backward(gamma)
        return -trellis.log_p

    @staticmethod
    def backward(ctx, grad_loss):
        (gamma,) = ctx.saved_tensors
        return -gamma * grad_loss.view(1, -1, 1), None, None, None, None, None


def ctc_loss(
    log_probs: torch.Tensor, targets: torch.Tensor, input_lengths, target_lengths, blank: int = 0,
    reduction: str = "mean", zero_infinity: bool = False, compiled: bool | None = None,
) -> torch.Tensor:
    """``-ln Pr(z|x)`` (eq. 14) with the arguments of ``torch.nn.functional.ctc_loss``.

    Parameters
    ----------
    log_probs : Tensor, shape (T, B, V)
        ``ln Pr(k|t)`` (e.g. ``log_softmax`` over V), time-major like torch; or (T, V) for one
        unbatched sequence.
    targets : LongTensor, shape (B, U) padded, or (sum(target_lengths),) concatenated
        Labels in 0..V-1 other than ``blank``.
    input_lengths, target_lengths : LongTensor, shape (B,) (or sequences of ints)
    blank : int
    reduction : str
        ``"none"`` (B losses), ``"sum"``, or ``"mean"``: each loss divided by its target length,
        then the mean over the batch (torch's definition).
    zero_infinity : bool
        Give impossible targets (fewer frames than :func:`min_frames`) a loss and gradient of
        zero instead of infinity.
    compiled : bool or None
        The compiled kernel (True), the tensor loop (False), or the kernel wherever it serves (None).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
    unbatched = log_probs.ndim == 2
    log_probs3, targets, input_lengths, target_lengths = check_inputs(log_probs, targets, input_lengths,
                                                                      target_lengths, blank)
    losses = _CTCLoss.apply(log_probs3, targets, input_lengths, target_lengths, blank, compiled)
    if zero_infinity:
        losses = torch.where(torch.isinf(losses), torch.zeros_like(losses), losses)
    if reduction == "none":
        return losses[0] if unbatched else losses
    if reduction == "sum":
        return losses.sum()
    return (losses / target_lengths.clamp(min=1).to(losses.dtype)).mean()


def viterbi(log_probs: torch.Tensor, target: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """The most probable alignment of one utterance: ``log_probs (T, V)``, ``target (U,)`` ->
    the label emitted at every frame, ``(T,)``, which :func:`collapse` maps back to ``target``.

    The alpha recursion with max in place of sum, and backpointers.
    """
    lp, tg, lens, tlens = check_inputs(log_probs, target, [len(log_probs)], [len(target)], blank)
    if int(min_frames(tg, tlens)[0]) > len(log_probs):
        raise ValueError(f"no alignment: {len(target)} labels need at least {int(min_frames(tg, tlens)[0])} frames, "
                         f"got {len(log_probs)}")
    lp = lp[:, 0].detach()
    states, skip = extend(tg, tlens, blank)
    states, skip = states[0], skip[0]
    T, S = len(lp), len(states)
    emit = lp[:, states]
    score = torch.full((S,), NEG_INF, dtype=lp.dtype, device=lp.device)
    score[: min(2, S)] = emit[0, : min(2, S)]
    back = torch.zeros(T, S, dtype=torch.long, device=lp.device)
    for t in range(1, T):
        candidates = torch.stack([score, _shift(score, 1), torch.where(skip, _shift(score, 2), NEG_INF)])
        best, which = candidates.max(0)
        back[t] = which
        score = best + emit[t]
    s = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2
    path = []
    for t in range(T - 1, -1, -1):
        path.append(int(states[s]))
        s -= int(back[t, s])
    return torch.tensor(path[::-1], dtype=torch.long)


def collapse(path, blank: int = 0) -> list[int]:
    """The map B: merge repeated labels, then remove blanks. ``[0, 3, 3, 0, 3, 5, 5] -> [3, 3, 5]``."""
    out, prev = [], None
    for k in (path.tolist() if isinstance(path, torch.Tensor) else path):
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out
