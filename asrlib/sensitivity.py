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
from asrlib.transducer import Transducer
from asrlib.transducer_loss import viterbi as transducer_viterbi

OUTPUTS = ("prob", "log_prob", "logit")


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
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x, torch.tensor([T], device=param.device))[0, frame]
            if not 0 <= k < logits.shape[-1]:
                raise ValueError(f"k must lie in 0..{logits.shape[-1] - 1}, got {k}")
            value = {"prob": logits.softmax(-1), "log_prob": logits.log_softmax(-1), "logit": logits}[output][k]
            (grad,) = torch.autograd.grad(value, x)
    finally:
        model.train(was_training)
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
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")
    if x.ndim != 2 or target.ndim != 1 or len(target) == 0:
        raise ValueError(f"need one utterance x (T, F) and a non-empty target (U,), got {tuple(x.shape)}, {tuple(target.shape)}")
    param = next(model.parameters())
    T, U = x.shape[0], len(target)
    x = x.detach().to(device=param.device, dtype=param.dtype)
    target = target.to(param.device)
    lens = torch.full((U,), T, device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            xs = x.expand(U, T, -1).clone().requires_grad_(True)
            rows = torch.arange(U, device=param.device)
            if isinstance(model, Transducer):
                p = model.project_p(model.predict(target[None]))[0, :U]               # (U, H): p_0 .. p_{U-1}
                with torch.no_grad():
                    frames, _ = transducer_viterbi(model(x[None], lens[:1], target[None], torch.tensor([U]))[0], target)
                lp = model.project_l(model.encode(xs, lens))[rows, frames.to(param.device)]
                logits = model.combine(lp, p)                                           # (U, V)
            else:
                logits_all = model(xs, lens)
                with torch.no_grad():
                    frames = _ctc_emissions(logits_all[0].log_softmax(-1).cpu(), target.cpu())
                logits = logits_all[rows, frames.to(param.device)]
            y = {"prob": logits.softmax(-1), "log_prob": logits.log_softmax(-1), "logit": logits}[output]
            (grad,) = torch.autograd.grad(y[rows, target].sum(), xs)
    finally:
        model.train(was_training)
    return grad.cpu(), frames.cpu()


SPREAD = ("own segment", "first neighbours", "second neighbours", "further")


def segment_frames(starts, ends, hop: int = HOP_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Phone boundaries in samples -> ``[first, end)`` frames (a frame belongs to the phone that
    holds its centre, as in :func:`asrlib.features.frame_labels`)."""
    return (-(-np.asarray(starts) // hop)).astype(int), (-(-np.asarray(ends) // hop)).astype(int)


def spread(grads: torch.Tensor, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The share of each row's gradient magnitude (``|d y_i / d x|`` summed over the features)
    in label i's own segment ``[first[i], end[i])``, in the segments of labels i-1 and i+1, in
    those of i-2 and i+2, and everywhere else: ``(U, 4)``, each row summing to 1 (:data:`SPREAD`).
    """
    U, T = grads.shape[:2]
    if len(first) != U or len(end) != U:
        raise ValueError(f"need one segment per row: {U} rows, {len(first)} starts, {len(end)} ends")
    mass = grads.abs().sum(-1).double().numpy()                     # (U, T)
    cum = np.concatenate([np.zeros((U, 1)), mass.cumsum(1)], 1)
    first, end = np.clip(first, 0, T), np.clip(end, 0, T)

    def within(i: np.ndarray, j: np.ndarray) -> np.ndarray:         # mass of row i in segment j (0 off the ends)
        ok = (j >= 0) & (j < U)
        jj = np.clip(j, 0, U - 1)
        return np.where(ok, cum[i, end[jj]] - cum[i, first[jj]], 0.0)

    i = np.arange(U)
    own = within(i, i)
    near = within(i, i - 1) + within(i, i + 1)
    second = within(i, i - 2) + within(i, i + 2)
    total = cum[:, -1]
    shares = np.stack([own, near, second, total - own - near - second], 1)
    return shares / np.where(total > 0, total, 1.0)[:, None]
