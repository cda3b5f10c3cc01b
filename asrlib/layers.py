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
    of all frames, the four gates in one product per step (on a CPU with oneDNN's prepacked
    weights, as ``nn.LSTM`` itself uses), in-place gate arithmetic with no autograd graph, and a
    hand-written backward pass through time (BPTT) whose weight gradients are one large matrix
    product after the loop.

``impl="auto"`` picks ``"builtin"`` where it exists and ``"fused"`` for the peephole LSTM.

On these, :class:`Bidirectional` pairs a forward and a backward layer (eq. 8-10) and
:class:`DeepRecurrent` stacks levels (eq. 11-12), each bidirectional level reading both
directions of the level below.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.func import functional_call

from asrlib.cells import GRUCell, LSTMCell, RNNCell, _Cell, make_cell

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


def _linear(weight: torch.Tensor, rows: int, bias: torch.Tensor | None = None):
    """``x -> x @ weight.T (+ bias)`` for inputs of ``rows`` rows, prepared once.

    On a CPU with oneDNN the weight is prepacked into oneDNN's blocked layout, the layout of
    oneDNN's own fused LSTM (what ``nn.LSTM`` runs on a CPU). For the small per-step products of
    a recurrence (16 x 250 by 250 x 1000) this halves the time of a plain BLAS call, and it
    speeds up the large input projection too. Elsewhere (GPU, float64, a torch built without
    these operators) it is the plain product.
    """
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available():
        try:
            packed = mkldnn._reorder_linear_weight(weight, rows)
            return lambda x: mkldnn._linear_pointwise(x, packed, bias, "none", [], "")  # noqa: E731
        except (AttributeError, RuntimeError):
            pass
    w_t = weight.t()
    if bias is None:
        return lambda x: x @ w_t  # noqa: E731
    return lambda x: torch.addmm(bias, x, w_t)  # noqa: E731


class PeepholeLSTMFunction(torch.autograd.Function):
    """A whole peephole-LSTM sequence, eq. (3)-(7), with a hand-written BPTT backward.

    Inputs are time-major: ``x : (T, B, I)``, ``h0, c0 : (B, H)``, ``bias`` the sum
    ``bias_ih + bias_hh`` (4H). Returns ``(h, c)``, each ``(T, B, H)``: every step's states.

    Forward: the input projections of all frames in one product, then per step one small
    product for all four gates and nine in-place elementwise operations, writing straight into
    preallocated buffers. Backward: per step, the gradients of the four gate pre-activations
    written into one (T, B, 4H) buffer (computing the derivative factors here, on data still in
    cache, measured faster than precomputing them for all frames in memory-bound passes), and
    one small product for the recurrent gradient; after the loop, one large product for the
    input gradient and one for both weight matrices, over ``[x_t, h_{t-1}]`` stacked.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias, w_ci, w_cf, w_co):
        T, B, _ = x.shape
        H = h0.shape[1]
        acts = _linear(weight_ih, T * B, bias)(x.reshape(T * B, -1)).view(T, B, 4 * H)  # input parts of all gates
        recurrent = _linear(weight_hh, B)
        w_cif = torch.stack([w_ci, w_cf])            # (2, H): the i and f peepholes in one operation
        hs = x.new_empty(T + 1, B, H)                # hs[0] = h0, hs[t + 1] = h_t
        cs = x.new_empty(T + 1, B, H)
        hs[0], cs[0] = h0, c0
        a_t, h_t, c_t = acts.unbind(0), hs.unbind(0), cs.unbind(0)
        for t in range(T):
            a = a_t[t].add_(recurrent(h_t[t]))                                        # all four gates
            a[:, : 2 * H].view(B, 2, H).addcmul_(c_t[t].unsqueeze(1), w_cif).sigmoid_()  # eq. (3), (4)
            i, f, g, o = a.chunk(4, dim=1)
            g.tanh_()
            c = torch.mul(f, c_t[t], out=c_t[t + 1]).addcmul_(i, g)                  # eq. (5)
            o.addcmul_(c, w_co).sigmoid_()                                            # eq. (6), with c_t
            torch.mul(o, torch.tanh(c), out=h_t[t + 1])                               # eq. (7)
        ctx.save_for_backward(x, weight_ih, weight_hh, w_ci, w_cf, w_co, acts, hs, cs)
        return hs[1:], cs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h, grad_c):
        x, weight_ih, weight_hh, w_ci, w_cf, w_co, acts, hs, cs = ctx.saved_tensors
        T, B, I = x.shape
        H = hs.shape[-1]
        back = _linear(weight_hh.t().contiguous(), B)                    # d -> d @ W_hh
        d_gates = torch.empty_like(acts)
        a_t, c_t, d_t = acts.unbind(0), cs.unbind(0), d_gates.unbind(0)
        dh = grad_h.clone().unbind(0)
        gc = grad_c.unbind(0) if grad_c is not None else None
        dc_next = torch.zeros_like(cs[0])
        dh_next = None
        for t in range(T - 1, -1, -1):
            i, f, g, o = a_t[t].chunk(4, dim=1)
            d_i, d_f, d_g, d_o = d_t[t].chunk(4, dim=1)
            c_prev, c = c_t[t], c_t[t + 1]
            h_grad = dh[t] if dh_next is None else dh[t].add_(dh_next)
            tanh_c = torch.tanh(c)
            torch.mul(h_grad, tanh_c, out=d_o).mul_(o - o * o)                         # through eq. (7), (6)
            dc = dc_next if gc is None else dc_next + gc[t]
            dc = dc.addcmul(h_grad * o, 1 - tanh_c * tanh_c).addcmul_(d_o, w_co)       # eq. (7) and (6)'s peephole
            torch.mul(dc, g, out=d_i).mul_(i - i * i)                                  # eq. (5), (3)
            torch.mul(dc, c_prev, out=d_f).mul_(f - f * f)                             # eq. (5), (4)
            torch.mul(dc, i, out=d_g).mul_(1 - g * g)                                  # eq. (5)
            dc_next = (dc * f).addcmul_(d_i, w_ci).addcmul_(d_f, w_cf)
            dh_next = back(d_t[t])
        flat = d_gates.view(T * B, 4 * H)
        grad_x = _linear(weight_ih.t().contiguous(), T * B)(flat).view_as(x)
        # both weight gradients in one product, as oneDNN's LSTM does: [x_t, h_{t-1}] stacked
        inputs = torch.cat([x.reshape(T * B, I), hs[:-1].reshape(T * B, H)], dim=1)
        grad_w = flat.t() @ inputs
        grad_bias = flat.sum(0)
        grad_ci = (d_gates[..., :H] * cs[:-1]).sum((0, 1))
        grad_cf = (d_gates[..., H : 2 * H] * cs[:-1]).sum((0, 1))
        grad_co = (d_gates[..., 3 * H :] * cs[1:]).sum((0, 1))
        return grad_x, dh_next, dc_next, grad_w[:, :I], grad_w[:, I:], grad_bias, grad_ci, grad_cf, grad_co


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
    backward direction: after its first frame). ``return_final=False`` gives ``(y, None)`` and
    lets the built-in path skip packing, its slow part on a CPU.
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

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None, state=None, return_final: bool = True):
        x_lens = check_batch(x, x_lens, self.cell.input_size)
        B, T, _ = x.shape
        state = self._check_state(state, B, x)
        if self.reverse:
            x = reverse_padded(x, x_lens)
        if self.impl == "builtin":
            y, final = self._builtin(x, x_lens, state, return_final)
        else:
            y, final = getattr(self, f"_{self.impl}")(x, x_lens, state)
            final = final if return_final else None
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

    def _builtin(self, x, x_lens, state, return_final=True):
        cell = self.cell
        kwargs = {"nonlinearity": cell.nonlinearity} if isinstance(cell, RNNCell) else {}
        template = _BUILTINS[type(cell)](
            cell.input_size, cell.hidden_size, bias=cell.bias_ih is not None, batch_first=True, device="meta", **kwargs
        )
        params = {f"{name}_l0": p for name, p in cell.named_parameters() if p is not None}
        # Packing makes the built-in stop at each length, which only the final state needs:
        # outputs at real frames never depend on the padding that follows them. Unpacked, a CPU
        # runs oneDNN's fused kernel, about 4x faster than the packed path.
        padded = return_final and bool((x_lens < x.shape[1]).any())
        inputs = nn.utils.rnn.pack_padded_sequence(x, x_lens.cpu(), batch_first=True, enforce_sorted=False) if padded else x
        hx = tuple(s.unsqueeze(0) for s in state) if isinstance(state, tuple) else state.unsqueeze(0)
        with warnings.catch_warnings():
            # cuDNN prefers one flat weight buffer; ours are separate parameters (same result)
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            out, final = functional_call(template, params, (inputs, hx))
        y = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0] if padded else out
        if not return_final:
            return y, None
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


class Bidirectional(nn.Module):
    """A bidirectional layer, eq. (8)-(10): one cell run forwards and another backwards over the
    same input, their outputs concatenated frame by frame.

    ``forward(x, x_lens)`` with ``x : (B, T, F)`` returns ``(B, T, 2H)``: ``[hf_t, hb_t]``,
    zero at padded frames. A linear layer over this concatenation is eq. (10)'s
    ``W_fy hf_t + W_by hb_t + b_y``.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, impl: str = "auto", **cell_kwargs):
        super().__init__()
        self.fwd = Recurrent(make_cell(kind, input_size, hidden_size, **cell_kwargs), reverse=False, impl=impl)
        self.bwd = Recurrent(make_cell(kind, input_size, hidden_size, **cell_kwargs), reverse=True, impl=impl)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None) -> torch.Tensor:
        x_lens = check_batch(x, x_lens, self.fwd.input_size)
        return torch.cat([self.fwd(x, x_lens, return_final=False)[0], self.bwd(x, x_lens, return_final=False)[0]], -1)


class DeepRecurrent(nn.Module):
    """N recurrent levels stacked, eq. (11)-(12): level n reads level n-1's outputs, ``h^0 = x``.

    Bidirectional, every level is a :class:`Bidirectional` layer, so it receives *both* the
    forward and the backward sequence of the level below (the paper's deep bidirectional
    network); unidirectional, every level runs forwards.

    Parameters
    ----------
    kind : str
        The cell: ``"lstm"``, ``"gru"`` or ``"tanh"`` (see :func:`asrlib.cells.make_cell`).
    input_size, hidden_size, num_levels : int
        ``hidden_size`` is per direction.
    bidirectional : bool
    impl : str
        Passed to every :class:`Recurrent`.
    **cell_kwargs
        e.g. ``peephole=False`` for the LSTM.

    Shapes
    ------
    ``forward(x, x_lens=None)`` with ``x : (B, T, F)`` returns ``(B, T, D)``, the top level's
    outputs, with ``D = output_size = hidden_size * (2 if bidirectional else 1)``;
    ``return_levels=True`` returns the list of every level's outputs instead.
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, num_levels: int = 1, bidirectional: bool = True,
        impl: str = "auto", **cell_kwargs,
    ):
        super().__init__()
        if num_levels < 1 or hidden_size < 1:
            raise ValueError(f"need at least one level and one cell, got num_levels={num_levels}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size, self.bidirectional = input_size, hidden_size, bidirectional
        self.output_size = hidden_size * (2 if bidirectional else 1)
        levels = []
        for n in range(num_levels):
            size = input_size if n == 0 else self.output_size
            if bidirectional:
                levels.append(Bidirectional(kind, size, hidden_size, impl=impl, **cell_kwargs))
            else:
                levels.append(Recurrent(make_cell(kind, size, hidden_size, **cell_kwargs), impl=impl))
        self.levels = nn.ModuleList(levels)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor | None = None, return_levels: bool = False):
        x_lens = check_batch(x, x_lens, self.input_size)
        outputs = []
        for level in self.levels:
            x = level(x, x_lens) if self.bidirectional else level(x, x_lens, return_final=False)[0]
            outputs.append(x)
        return outputs if return_levels else x
