"""Input sensitivity: how much one output at one frame depends on every input (the paper's Fig. 3).

The derivative of an output ``y_{t,k}`` with respect to the whole input sequence ``x : (T, F)``
shows which frames and which filter-bank channels a network listens to when it emits phone k
at frame t. A unidirectional network can only look back (the derivative is zero after t); a
bidirectional one looks both ways; the paper's Figure 3 shows a deep bidirectional CTC
network's sensitivity reaching into the neighbouring phones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from asrlib.ctc import viterbi
from asrlib.features import HOP_LENGTH
from asrlib.runtime import evaluating
from asrlib.transducer import Transducer
from asrlib.transducer_loss import viterbi as transducer_viterbi

OUTPUTS = ("prob", "log_prob", "logit")


def _output(logits: torch.Tensor, output: str) -> torch.Tensor:
    """The softmax probability, its log, or the logits themselves (:data:`OUTPUTS`)."""
    return {"prob": logits.softmax(-1), "log_prob": logits.log_softmax(-1), "logit": logits}[output]


def input_sensitivity(model: nn.Module, x: torch.Tensor, frame: int, k: int, output: str = "prob") -> torch.Tensor:
    """``d y_{frame,k} / d x`` for one utterance.

    Parameters
    ----------
    model : nn.Module
        Maps ``(x : (1, T, F), x_lens : (1,))`` to logits ``(1, T, V)``, e.g.
        :class:`asrlib.models.AcousticModel`.
    x : Tensor, shape (T, F)
    frame, k : int
        The frame t and the output k.
    output : str
        ``"prob"`` (the softmax output, as in the paper), ``"log_prob"`` or ``"logit"``.

    Returns
    -------
    Tensor, shape (T, F), on the CPU.
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")
    if x.ndim != 2:
        raise ValueError(f"x must be one utterance of shape (T, F), got {tuple(x.shape)}")
    T = x.shape[0]
    if not 0 <= frame < T:
        raise ValueError(f"frame must lie in 0..{T - 1}, got {frame}")
    param = next(model.parameters())
    x = x.detach().to(device=param.device, dtype=param.dtype).unsqueeze(0).requires_grad_(True)
    with evaluating(model), torch.enable_grad():
        logits = model(x, torch.tensor([T], device=param.device))[0, frame]
        if not 0 <= k < logits.shape[-1]:
            raise ValueError(f"k must lie in 0..{logits.shape[-1] - 1}, got {k}")
        value = _output(logits, output)[k]
        (grad,) = torch.autograd.grad(value, x)
    return grad[0].cpu()


# ---------------------------------------------------------------------------------------------
# every emission of an utterance at once, and how far each one listens


def _ctc_emissions(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The frame of each label's spike: on the most probable alignment of ``target``, the frame
    of the label's run where its probability peaks."""
    path = viterbi(log_probs, target)
    frames, t, T = [], 0, len(path)
    for k in target.tolist():
        while path[t] != k:  # the blank (and nothing else) separates runs on an alignment
            t += 1
        end = t
        while end < T and path[end] == k:
            end += 1
        frames.append(t + int(log_probs[t:end, k].argmax()))
        t = end
    return torch.tensor(frames, dtype=torch.long)


def emission_sensitivity(model: nn.Module, x: torch.Tensor, target: torch.Tensor, output: str = "prob"):
    """``d y / d x`` for the output of every label of ``target`` at the point where the network
    emits it, in one backward pass over a batch of copies of the utterance.

    A CTC network (:class:`asrlib.models.AcousticModel`) emits label ``i`` at the frame where its
    spike peaks on the most probable alignment of ``target``; a transducer
    (:class:`asrlib.transducer.Transducer`) at the node ``(t_i, i)`` of its most probable
    alignment, and ``y`` is then ``Pr(k_i | t_i, i)`` of eq. (17).

    Returns
    -------
    grads : Tensor, shape (U, T, F), on the CPU
        Row i: the derivative of label i's output.
    frames : LongTensor, shape (U,)
        The emission frames.
    """
    return emission_sensitivities(model, [x], [target], output)[0]


def emission_sensitivities(model: nn.Module, xs: list, targets: list, output: str = "prob", select: list | None = None) -> list:
    """:func:`emission_sensitivity` of several utterances in one padded batch (the per-frame cost
    of a recurrent network is paid once for all of them): ``[(grads, frames)]``, one per utterance.

    ``select[k]``, optional, lists the positions in ``targets[k]`` of the labels to differentiate
    (default: all); ``grads`` and ``frames`` then have one row per selected label, in that order.
    The cost grows with the number of rows, so a sample of the labels measures a long split sooner."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")
    if len(xs) != len(targets) or not xs:
        raise ValueError(f"need as many targets as utterances (at least one), got {len(xs)} and {len(targets)}")
    for x, target in zip(xs, targets):
        if x.ndim != 2 or target.ndim != 1 or len(target) == 0:
            raise ValueError(f"need utterances x (T, F) and non-empty targets (U,), got {tuple(x.shape)}, {tuple(target.shape)}")
    param = next(model.parameters())
    device = param.device
    Ts = [len(x) for x in xs]
    select = [torch.arange(len(t)) for t in targets] if select is None else [torch.as_tensor(s, dtype=torch.long) for s in select]
    if len(select) != len(targets) or any(len(s) and (int(s.min()) < 0 or int(s.max()) >= len(t)) for s, t in zip(select, targets)):
        raise ValueError("select must list, for every utterance, positions of its target")
    Us = [len(s) for s in select]                                              # rows per utterance
    if not sum(Us):
        raise ValueError("select chooses no label at all")
    owner = torch.repeat_interleave(torch.arange(len(xs)), torch.tensor(Us))  # the utterance of every row
    first = torch.cumsum(torch.tensor([0, *Us[:-1]]), 0).tolist()             # each utterance's first row
    chosen = [k for k, u in enumerate(Us) if u]                               # the utterances with rows
    batch = nn.utils.rnn.pad_sequence([x.detach().to(dtype=param.dtype) for x in xs], batch_first=True)
    lens = torch.tensor(Ts, device=device)
    labels = torch.cat([t.long()[s] for t, s in zip(targets, select)]).to(device)
    with evaluating(model), torch.enable_grad():
        copies = batch[owner].to(device).requires_grad_(True)                   # (R, T_max, F): R = sum U
        rows = torch.arange(len(owner), device=device)
        # each utterance's alignment comes from its first copy's outputs: no second forward pass
        if isinstance(model, Transducer):
            padded = nn.utils.rnn.pad_sequence([t.long() for t in targets], batch_first=True).to(device)
            p = model.project_p(model.predict(padded, torch.tensor([len(t) for t in targets], device=device)))
            l_proj = model.project_l(model.encode(copies, lens[owner.to(device)]))  # (R, T_max, H)
            with torch.no_grad():
                frames = torch.cat([
                    transducer_viterbi(model.combine(l_proj[first[k], : Ts[k], None], p[k, : len(targets[k]) + 1][None]),
                                       targets[k].to(device))[0][select[k]]
                    for k in chosen])
            index = torch.cat(select).to(device)                                   # label i leaves p_i
            logits = model.combine(l_proj[rows, frames.to(device)], p[owner.to(device), index])
        else:
            all_logits = model(copies, lens[owner.to(device)])
            with torch.no_grad():
                frames = torch.cat([_ctc_emissions(all_logits[first[k], : Ts[k]].log_softmax(-1).float().cpu(),
                                                   targets[k].cpu())[select[k]] for k in chosen])
            logits = all_logits[rows, frames.to(device)]
        y = _output(logits, output)
        (grad,) = torch.autograd.grad(y[rows, labels].sum(), copies)
    grad, out, start = grad.cpu(), [], 0
    for T, U in zip(Ts, Us):
        out.append((grad[start:start + U, :T], frames[start:start + U].cpu()))
        start += U
    return out


SPREAD = ("own segment", "first neighbours", "second neighbours", "further")


def segment_frames(starts, ends, hop: int = HOP_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Phone boundaries in samples -> ``[first, end)`` frames (a frame belongs to the phone that
    holds its centre, as in :func:`asrlib.features.frame_labels`)."""
    return (-(-np.asarray(starts) // hop)).astype(int), (-(-np.asarray(ends) // hop)).astype(int)


def spread(grads: torch.Tensor, first: np.ndarray, end: np.ndarray, rows=None) -> np.ndarray:
    """The share of each row's gradient magnitude (``|d y_i / d x|`` summed over the features)
    in label i's own segment ``[first[i], end[i])``, in the segments of labels i-1 and i+1, in
    those of i-2 and i+2, and everywhere else: ``(R, 4)``, each row summing to 1 (:data:`SPREAD`).
    Row r belongs to label ``rows[r]`` (default: row i to label i, one row per segment).
    """
    R, T = grads.shape[:2]
    U = len(first)
    i = np.arange(R) if rows is None else np.asarray(rows)   # the label of every row (all, in order, by default)
    if len(end) != U or len(i) != R or (rows is None and U != R) or (R and not 0 <= i.min() <= i.max() < U):
        raise ValueError(f"need one segment per row: {R} rows, {len(first)} starts, {len(end)} ends")
    mass = grads.abs().sum(-1).double().numpy()                     # (R, T)
    cum = np.concatenate([np.zeros((R, 1)), mass.cumsum(1)], 1)
    first, end = np.clip(first, 0, T), np.clip(end, 0, T)
    r = np.arange(R)

    def within(j: np.ndarray) -> np.ndarray:                        # mass of each row in segment j (0 off the ends)
        ok = (j >= 0) & (j < U)
        jj = np.clip(j, 0, U - 1)
        return np.where(ok, cum[r, end[jj]] - cum[r, first[jj]], 0.0)

    own = within(i)
    near = within(i - 1) + within(i + 1)
    second = within(i - 2) + within(i + 2)
    total = cum[:, -1]
    shares = np.stack([own, near, second, total - own - near - second], 1)
    return shares / np.where(total > 0, total, 1.0)[:, None]
