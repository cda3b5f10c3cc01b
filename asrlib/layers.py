"""Recurrent layers: a cell unrolled over a padded batch, forwards or backwards in time.

:class:`Recurrent` runs any cell of :mod:`asrlib.cells` over ``x : (B, T, F)`` with lengths
``x_lens``. Padding sits after each utterance's last frame and never changes a real frame's
output, in either direction: the backward direction reverses each utterance *within its own
length*, so its first step is the utterance's last real frame, not padding.

Three implementations compute the same thing:

``"loop"``
    the cell's own ``step`` in a Python loop, with autograd: the readable reference.
``"builtin"``
    where torch has the same network (tanh/ReLU RNN, GRU, LSTM without peepholes), the
    parameters are handed to ``torch.nn.RNN/GRU/LSTM`` (cuDNN on a GPU) through
    ``torch.func.functional_call``.
``"fused"``
    the peephole LSTM, which torch does not have: one matrix product for the input projection
    of all frames, the four gates in one product per step, in-place gate arithmetic with no
    autograd graph, and a hand-written backward pass through time (BPTT) whose weight
    gradients are three large matrix products after the loop.

``impl="auto"`` picks ``"builtin"`` where it exists and ``"fused"`` for the peephole LSTM.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call

from asrlib.cells import GRUCell, LSTMCell, RNNCell, _Cell

IMPLS = ("auto", "loop", "builtin", "fused")


def check_batch(x: torch.Tensor, x_lens: torch.Tensor | None, input_size: int) -> torch.Tensor:
    """Validate a padded batch and return its lengths (all T when ``x_lens`` is None)."""
    if x.ndim != 3 or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape (B, T, {input_size}), got {tuple(x.shape)}")
    B, T, _ = x.shape
    if x_lens is None:
        return torch.full((B,), T, dtype=torch.long, device=x.device)
    if not isinstance(x_lens, torch.Tensor) or x_lens.shape != (B,) or x_lens.is_floating_point():
        shape = tuple(x_lens.shape) if isinstance(x_lens, torch.Tensor) else type(x_lens).__name__
        raise ValueError(f"x_lens must be an integer tensor of shape ({B},), got {shape}")
    if B and (int(x_lens.min()) < 1 or int(x_lens.max()) > T):
        raise ValueError(f"x_lens must lie in 1..{T} (the padded length), got {x_lens.tolist()}")
    return x_lens.to(device=x.device, dtype=torch.long)


def reverse_padded(x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x : (B, T, ...)`` within its length; padding stays in place.
    Its own inverse."""
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)
    lens = x_lens.unsqueeze(1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand_as(x))


def time_mask(x_lens: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) boolean mask of the real frames."""
    return torch.arange(T, device=x_lens.device).unsqueeze(0) < x_lens.unsqueeze(1)


def _last(seq: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """``seq : (B, T, H)`` at each sequence's last real frame: (B, H)."""
    idx = (x_lens - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[-1])
    return seq.gather(1, idx).squeeze(1)


class PeepholeLSTMFunction(torch.autograd.Function):
    """A whole peephole-LSTM sequence, eq. (3)-(7), with a hand-written BPTT backward.

    Inputs are time-major: ``x : (T, B, I)``, ``h0, c0 : (B, H)``, ``bias`` the sum
    ``bias_ih + bias_hh`` (4H). Returns ``(h, c)``, each ``(T, B, H)``: every step's states.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias, w_ci, w_cf, w_co):
        T, B, _ = x.shape
        H = h0.shape[1]
        gates = torch.addmm(bias, x.reshape(T * B, -1), weight_ih.t()).view(T, B, 4 * H)  # all input projections
        hs = x.new_empty(T + 1, B, H)
        cs = x.new_empty(T + 1, B, H)
        tanh_c = x.new_empty(T, B, H)
        hs[0], cs[0] = h0, c0
        w_hh_t = weight_hh.t()
        for t in range(T):
            a = gates[t]
            a.addmm_(hs[t], w_hh_t)                               # the four gates in one product
            i, f, g, o = a.chunk(4, dim=1)
            c_prev, c = cs[t], cs[t + 1]
            i.addcmul_(c_prev, w_ci).sigmoid_()                    # eq. (3)
            f.addcmul_(c_prev, w_cf).sigmoid_()                    # eq. (4)
            g.tanh_()
            torch.mul(f, c_prev, out=c).addcmul_(i, g)             # eq. (5)
            o.addcmul_(c, w_co).sigmoid_()                         # eq. (6), with c_t
            torch.mul(o, torch.tanh(c, out=tanh_c[t]), out=hs[t + 1])  # eq. (7)
        ctx.save_for_backward(x, weight_ih, weight_hh, w_ci, w_cf, w_co, gates, hs, cs, tanh_c)
        return hs[1:], cs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h, grad_c):
        x, weight_ih, weight_hh, w_ci, w_cf, w_co, acts, hs, cs, tanh_c = ctx.saved_tensors
        T, B, _ = x.shape
        H = hs.shape[-1]
        grad_h = torch.zeros_like(hs[1:]) if grad_h is None else grad_h
        d_gates = torch.empty_like(acts)                         # gradients w.r.t. pre-activations
        dh_next = hs.new_zeros(B, H)
        dc_next = hs.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            i, f, g, o = acts[t].chunk(4, dim=1)
            d_i, d_f, d_g, d_o = d_gates[t].chunk(4, dim=1)
            dh = grad_h[t] + dh_next
            tc = tanh_c[t]
            dc = dc_next if grad_c is None else dc_next + grad_c[t]
            torch.mul(dh, tc, out=d_o).mul_(o * (1 - o))                     # through eq. (7), (6)
            dc = dc + dh * o * (1 - tc * tc) + d_o * w_co                    # eq. (7) and the peephole of (6)
            torch.mul(dc, g, out=d_i).mul_(i * (1 - i))                      # eq. (5), (3)
            torch.mul(dc, cs[t], out=d_f).mul_(f * (1 - f))                  # eq. (5), (4)
            torch.mul(dc, i, out=d_g).mul_(1 - g * g)                        # eq. (5)
            dc_next = dc * f + d_i * w_ci + d_f * w_cf
            dh_next = d_gates[t] @ weight_hh
        flat = d_gates.view(T * B, 4 * H)
        grad_x = (flat @ weight_ih).view_as(x)
        grad_w_ih = flat.t() @ x.reshape(T * B, -1)
        grad_w_hh = flat.t() @ hs[:-1].reshape(T * B, H)
        grad_bias = flat.sum(0)
        grad_ci = (d_gates[..., :H] * cs[:-1]).sum((0, 1))
        grad_cf = (d_gates[..., H : 2 * H] * cs[:-1]).sum((0, 1))
        grad_co = (d_gates[..., 3 * H :] * cs[1:]).sum((0, 1))
        return grad_x, dh_next, dc_next, grad_w_ih, grad_w_hh, grad_bias, grad_ci, grad_cf, grad_co


_BUILTINS = {RNNCell: nn.RNN, GRUCell: nn.GRU, LSTMCell: nn.LSTM}


class Recurrent(nn.Module):
    """A cell unrolled over a padded batch.

    Parameters
    ----------
    cell : RNNCell, LSTMCell or GRUCell
    reverse : bool
        Run backwards in time (the backward half of a bidirectional layer).
    impl : str
        ``"auto"``, ``"loop"``, ``"builtin"`` or ``"fused"`` (see the module docstring).

    Shapes
    ------
    ``forward(x, x_lens=None, state=None)`` with ``x : (B, T, F)``, ``x_lens : (B,)`` returns
    ``(y, final)``: ``y : (B, T, H)``, zero at padded frames, and the final state (``h``, or
    ``(h, c)`` for the LSTM, each ``(B, H)``) after each sequence's last real frame (for the
    backward direction: after its first frame).
    """

    def __init__(self, cell: _Cell, reverse: bool = False, impl: str = "auto"):
        super().__init__()
        if type(cell) not in _BUILTINS:
            raise TypeError(f"cell must be an RNNCell, LSTMCell or GRUCell, got {type(cell).__name__}")
        if impl not in IMPLS:
            raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")
        self.cell = cell
        self.reverse = reverse
        self.impl = self._resolve(impl)

    def _resolve(self, impl: str) -> str:
        peephole = isinstance(self.cell, LSTMCell) and self.cell.peephole
        if impl == "auto":
            return "fused" if peephole else "builtin"
        if impl == "builtin" and peephole:
            raise ValueError("torch has no peephole LSTM: use impl='fused' or 'loop'")
        if impl == "fused" and not peephole:
            raise ValueError("impl='fused' is the peephole LSTM's; use 'builtin' or 'loop' for this cell")
        return impl

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def extra_repr(self) -> str:
        return f"reverse={self.reverse}, impl={self.impl!r}"

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None, state=None):
        x_lens = check_batch(x, x_lens, self.cell.input_size)
        B, T, _ = x.shape
        state = self._check_state(state, B, x)
        if self.reverse:
            x = reverse_padded(x, x_lens)
        y, final = getattr(self, f"_{self.impl}")(x, x_lens, state)
        y = y * time_mask(x_lens, T).unsqueeze(-1).to(y.dtype)
        if self.reverse:
            y = reverse_padded(y, x_lens)
        return y, final

    def _check_state(self, state, B: int, x: torch.Tensor):
        if state is None:
            return self.cell.init_state(B, x)
        parts = state if isinstance(self.cell, LSTMCell) else (state,)
        if isinstance(self.cell, LSTMCell) and not (isinstance(state, tuple) and len(state) == 2):
            raise ValueError("the LSTM's state must be a tuple (h, c)")
        for name, s in zip(("h", "c"), parts):
            if s.shape != (B, self.cell.hidden_size):
                raise ValueError(f"initial {name} must have shape ({B}, {self.cell.hidden_size}), got {tuple(s.shape)}")
        return state

    def _loop(self, x, x_lens, state):
        """The reference: the cell's step at every frame, states frozen after each length."""
        xg = self.cell.input_projection(x)  # (B, T, G*H) for all frames at once
        mask = time_mask(x_lens, x.shape[1]).unsqueeze(-1)
        is_lstm = isinstance(self.cell, LSTMCell)
        outputs = []
        for t, xg_t in enumerate(xg.unbind(1)):
            new = self.cell.step(xg_t, state)
            keep = mask[:, t]
            if is_lstm:
                state = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1]))
                outputs.append(new[0])
            else:
                state = torch.where(keep, new, state)
                outputs.append(new)
        return torch.stack(outputs, 1), state

    def _builtin(self, x, x_lens, state):
        cell = self.cell
        kwargs = {"nonlinearity": cell.nonlinearity} if isinstance(cell, RNNCell) else {}
        template = _BUILTINS[type(cell)](
            cell.input_size, cell.hidden_size, bias=cell.bias_ih is not None, batch_first=True, device="meta", **kwargs
        )
        params = {f"{name}_l0": p for name, p in cell.named_parameters() if p is not None}
        padded = bool((x_lens < x.shape[1]).any())
        # packing makes the built-in stop at each length; without padding it is not needed
        inputs = nn.utils.rnn.pack_padded_sequence(x, x_lens.cpu(), batch_first=True, enforce_sorted=False) if padded else x
        hx = tuple(s.unsqueeze(0) for s in state) if isinstance(state, tuple) else state.unsqueeze(0)
        with warnings.catch_warnings():
            # cuDNN prefers one flat weight buffer; ours are separate parameters (same result)
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            out, final = functional_call(template, params, (inputs, hx))
        y = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0] if padded else out
        final = tuple(s.squeeze(0) for s in final) if isinstance(final, tuple) else final.squeeze(0)
        return y, final

    def _fused(self, x, x_lens, state):
        cell = self.cell
        H = cell.hidden_size
        bias = cell.bias_ih + cell.bias_hh if cell.bias_ih is not None else x.new_zeros(4 * H)
        h, c = PeepholeLSTMFunction.apply(
            x.transpose(0, 1), state[0], state[1], cell.weight_ih, cell.weight_hh, bias,
            cell.weight_ci, cell.weight_cf, cell.weight_co,
        )
        h, c = h.transpose(0, 1), c.transpose(0, 1)
        return h, (_last(h, x_lens), _last(c, x_lens))
