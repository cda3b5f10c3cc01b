"""Measuring how far back gradients reach: the tools of chapters 2 and 3.

Back-propagation through time multiplies Jacobians. For the plain tanh RNN, eq. (1),

    dh_T/dh_t = prod_{k=t+1}^{T} diag(1 - h_k^2) W_hh,

so ``||dh_T/dh_t|| <= (gamma * sigma_max(W_hh))^(T - t)`` with ``gamma = max |tanh'| = 1``: below
one the gradient vanishes geometrically with the lag (Hochreiter 1991; Bengio et al. 1994;
Pascanu et al. 2013). :func:`gradient_vs_lag` measures these norms with autograd for any cell,
and :func:`tanh_rnn_jacobians` computes the product above directly, as an independent check.
"""

from __future__ import annotations

import torch

from asrlib.cells import LSTMCell, _Cell


def scale_spectral_radius(weight: torch.Tensor, radius: float) -> torch.Tensor:
    """``weight`` rescaled in place so that its largest eigenvalue magnitude is ``radius``."""
    with torch.no_grad():
        current = torch.linalg.eigvals(weight.double()).abs().max().item()
        weight.mul_(radius / current)
    return weight


def gradient_vs_lag(cell: _Cell, x: torch.Tensor, wrt: str = "state") -> torch.Tensor:
    """Spectral norms ``||d h_T / d s_t||`` for every frame t of one sequence.

    Parameters
    ----------
    cell : RNNCell, LSTMCell or GRUCell
    x : Tensor, shape (T, F)
        One input sequence.
    wrt : str
        ``"state"``: s_t is the recurrent state after frame t (h_t; for the LSTM the cell state
        c_t, the path of the constant error carousel). ``"input"``: s_t is the input x_t.

    Returns
    -------
    Tensor, shape (T,)
        Entry t is the norm at lag ``T - 1 - t`` (the last entry is lag 0).
    """
    if wrt not in ("state", "input"):
        raise ValueError(f"wrt must be 'state' or 'input', got {wrt!r}")
    if x.ndim != 2 or x.shape[1] != cell.input_size:
        raise ValueError(f"x must have shape (T, {cell.input_size}), got {tuple(x.shape)}")
    is_lstm = isinstance(cell, LSTMCell)
    xs = [x_t.unsqueeze(0).detach().requires_grad_(wrt == "input") for x_t in x]
    state = cell.init_state(1, x)
    states = []
    for x_t in xs:
        state = cell.step(cell.input_projection(x_t), state)
        states.append(state[1] if is_lstm else state)  # c_t for the LSTM, h_t otherwise
    h_T = state[0] if is_lstm else state
    # every row of the Jacobian at once: one backward pass per output unit, batched
    eye = torch.eye(h_T.shape[1], dtype=h_T.dtype, device=h_T.device).unsqueeze(1)  # (H, 1, H)
    rows = torch.autograd.grad(h_T, states if wrt == "state" else xs, grad_outputs=eye, is_grads_batched=True)
    return torch.stack([torch.linalg.matrix_norm(r[:, 0, :], ord=2) for r in rows]).detach()


@torch.no_grad()
def tanh_rnn_jacobians(weight_hh: torch.Tensor, hs: torch.Tensor) -> torch.Tensor:
    """``||prod_{k=t+1}^{T} diag(1 - h_k^2) W_hh||_2`` for every t, from the states
    ``hs : (T, H)`` of a tanh RNN: the Jacobian product written out."""
    T, H = hs.shape
    product = torch.eye(H, dtype=hs.dtype, device=hs.device)
    norms = [torch.linalg.matrix_norm(product, ord=2)]
    for k in range(T - 1, 0, -1):
        product = product @ torch.diag(1 - hs[k] ** 2) @ weight_hh
        norms.append(torch.linalg.matrix_norm(product, ord=2))
    return torch.stack(norms[::-1])
