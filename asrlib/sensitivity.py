"""Input sensitivity: how much one output at one frame depends on every input (the paper's Fig. 3).

The derivative of an output ``y_{t,k}`` with respect to the whole input sequence ``x : (T, F)``
shows which frames and which filter-bank channels a network listens to when it emits phone k
at frame t. A unidirectional network can only look back (the derivative is zero after t); a
bidirectional one looks both ways; the paper's Figure 3 shows a deep bidirectional CTC
network's sensitivity reaching into the neighbouring phones.
"""

from __future__ import annotations

import torch
from torch import nn

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
