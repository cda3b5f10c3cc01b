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
    weights, as ``nn.LSTM`` itself uses), each step's elementwise work in one call of a compiled
    kernel (:mod:`asrlib.native`; PyTorch operations where there is none), and a hand-written
    backward pass through time (BPTT) whose weight gradients are large matrix products after the
    loop. On a CPU a train step costs about what ``nn.LSTM``'s does
    (``tests/benchmarks/RESULTS.md``).

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

from asrlib import native
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


def _frames(x_lens: torch.Tensor, T: int, reverse: bool) -> torch.Tensor:
    """(T, B): the frame read at each step. Backwards, each utterance is read from its last real
    frame to its first and its padding stays after it. The map is its own inverse."""
    t = torch.arange(T, device=x_lens.device).unsqueeze(1)
    lens = x_lens.unsqueeze(0)
    return torch.where(t < lens, lens - 1 - t, t) if reverse else t.expand(T, len(x_lens))


def reverse_padded(x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x : (B, T, ...)`` within its length; padding stays in place.
    Its own inverse."""
    idx = _frames(x_lens.to(x.device), x.shape[1], reverse=True).t()
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.ndim - 2))).expand_as(x))


def time_mask(x_lens: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) boolean mask of the real frames."""
    return torch.arange(T, device=x_lens.device).unsqueeze(0) < x_lens.unsqueeze(1)


def _onednn(t: torch.Tensor) -> bool:
    """Whether oneDNN's linear operators can take ``t``: float32 on a CPU with oneDNN."""
    return (
        t.device.type == "cpu" and t.dtype == torch.float32 and torch.backends.mkldnn.is_available()
        and hasattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise")
    )


def _linear(weight: torch.Tensor, rows: int, bias: torch.Tensor | None = None):
    """``(x, add=None) -> x @ weight.T (+ bias) (+ add)`` for inputs of ``rows`` rows, prepared once.

    On a CPU with oneDNN the weight is prepacked into oneDNN's blocked layout, the layout of
    oneDNN's own fused LSTM (what ``nn.LSTM`` runs on a CPU), and ``add`` is fused into the
    product. For the small per-step products of a recurrence (16 x 250 by 250 x 1000) this halves
    the time of a plain BLAS call, and it speeds up the large input projection too. Elsewhere
    (GPU, float64) it is the plain product.
    """
    if _onednn(weight):
        mkldnn = torch.ops.mkldnn
        packed = mkldnn._reorder_linear_weight(weight, rows)

        def product(x, add=None):
            if add is None:
                return mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
            return mkldnn._linear_pointwise.binary(x, add, packed, bias, "add")

        return product
    w_t = weight.t()

    def product(x, add=None):
        if bias is not None:
            add = bias if add is None else add + bias
        return x @ w_t if add is None else torch.addmm(add, x, w_t)

    return product


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b`` for ``a : (N, M)``, ``b : (N, K)``: a weight gradient summed over N frames.

    oneDNN's product takes the transposed operands as strided views, and on a CPU runs this
    shape about twice as fast as the BLAS call behind ``a.T @ b``.
    """
    if _onednn(a):
        return torch.ops.mkldnn._linear_pointwise(b.t(), a.t(), None, "none", [], "").t()
    return a.t() @ b


class PeepholeLSTMFunction(torch.autograd.Function):
    """A whole peephole-LSTM sequence, eq. (3)-(7), with a hand-written BPTT backward.

    Inputs are time-major: ``x : (T, B, I)``, ``h0, c0 : (B, H)``, ``bias`` the sum
    ``bias_ih + bias_hh`` (4H). Returns ``(h, c)``, each ``(T, B, H)``: every step's states.

    Forward: the input projections of all frames in one product, then per step one small product
    for all four gates and the step's elementwise work. Backward, per step: the elementwise work
    that gives the gradients of the gate pre-activations, and one small product for the recurrent
    gradient; after the loop, one large product for the input gradient and two for the weight
    gradients, over all frames at once.

    A step's elementwise work has two implementations that compute the same numbers: the
    compiled kernels of :mod:`asrlib.native` (float32 on a CPU, where a C compiler exists), and
    PyTorch operations otherwise (GPU, float64), written in place into preallocated buffers.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias, w_ci, w_cf, w_co):
        ctx.set_materialize_grads(False)
        T, B, I = x.shape
        H = h0.shape[1]
        # the input part of every frame's gates; the steps add the recurrent part and activate them
        acts = _linear(weight_ih, T * B, bias)(x.reshape(T * B, I)).view(T, B, 4 * H)
        hs = x.new_empty(T + 1, B, H)                # hs[0] = h0, hs[t + 1] = h_t
        cs = x.new_empty(T + 1, B, H)
        tanh_c = x.new_empty(T, B, H)
        hs[0], cs[0] = h0, c0
        peepholes = [w.contiguous() for w in (w_ci, w_cf, w_co)]
        steps = _native_forward if _native_ok(x) else _torch_forward
        steps(acts, hs, cs, tanh_c, _linear(weight_hh, B), *peepholes)
        ctx.save_for_backward(x, weight_ih, weight_hh, *peepholes, acts, hs, cs, tanh_c)
        return hs[1:], cs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h, grad_c):
        x, weight_ih, weight_hh, w_ci, w_cf, w_co, acts, hs, cs, tanh_c = ctx.saved_tensors
        T, B, I = x.shape
        H = hs.shape[-1]
        back = _linear(weight_hh.t().contiguous(), B)                    # d -> d @ W_hh (+ add)
        grad_h = grad_h.contiguous() if grad_h is not None else hs.new_zeros(T, B, H)
        steps = _native_backward if _native_ok(x) else _torch_backward
        dc = cs.new_empty(B, H).copy_(grad_c[T - 1]) if grad_c is not None else cs.new_zeros(B, H)
        d_gates, grad_h0, grad_c0 = steps(acts, cs, tanh_c, grad_h, grad_c, dc, back, w_ci, w_cf, w_co)

        flat = d_gates.view(T * B, 4 * H)
        grad_x = _linear(weight_ih.t().contiguous(), T * B)(flat).view_as(x) if ctx.needs_input_grad[0] else None
        grad_ih = _gram(flat, x.reshape(T * B, I))
        grad_hh = _gram(flat, hs[:-1].reshape(T * B, H))
        grad_ci = (d_gates[..., :H] * cs[:-1]).sum((0, 1))
        grad_cf = (d_gates[..., H : 2 * H] * cs[:-1]).sum((0, 1))
        grad_co = (d_gates[..., 3 * H :] * cs[1:]).sum((0, 1))
        return grad_x, grad_h0, grad_c0, grad_ih, grad_hh, flat.sum(0), grad_ci, grad_cf, grad_co


def _native_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and native.kernels() is not None


def _torch_forward(acts, hs, cs, tanh_c, recurrent, w_ci, w_cf, w_co):
    """The forward steps in PyTorch operations: ``acts`` (T, B, 4H) in, the gate activations out;
    ``hs``, ``cs`` (T + 1, B, H) and ``tanh_c`` (T, B, H) filled from step 1 on."""
    T, B, _ = acts.shape
    H = hs.shape[-1]
    w_cif = torch.stack([w_ci, w_cf])             # (2, H): the i and f peepholes in one operation
    gates = acts.view(T, B, 4, H)
    a_t, if_t = acts.unbind(0), gates[:, :, :2].unbind(0)
    i_t, f_t, g_t, o_t = (gates[:, :, k].unbind(0) for k in range(4))
    h_t, c_t, tc_t = hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    for t in range(T):
        a_t[t].add_(recurrent(h_t[t]))                                     # all four gates
        if_t[t].addcmul_(c_t[t].unsqueeze(1), w_cif).sigmoid_()            # eq. (3), (4)
        g_t[t].tanh_()
        c = torch.mul(f_t[t], c_t[t], out=c_t[t + 1]).addcmul_(i_t[t], g_t[t])  # eq. (5)
        o_t[t].addcmul_(c, w_co).sigmoid_()                                # eq. (6), with c_t
        torch.mul(o_t[t], torch.tanh(c, out=tc_t[t]), out=h_t[t + 1])     # eq. (7)


def _torch_backward(acts, cs, tanh_c, grad_h, grad_c, dc, back, w_ci, w_cf, w_co):
    """The backward steps in PyTorch operations. ``dc`` (B, H) comes in holding dL/dc at the last
    step and is updated in place. Returns the gradients of the gate pre-activations (T, B, 4H),
    and of h0 and c0.

    First the factors of every frame, in a few passes over whole tensors. With dc = dL/dc_t (all
    paths) and dh = dL/dh_t, the gradients of the pre-activations are dc * (g i', c_{t-1} f', i g')
    for i, f, g and dh * tanh(c_t) o' for o; dc gains dh * through_h (eq. 7, and eq. 6's peephole)
    and passes dc * carry on to c_{t-1} (eq. 5, and the peepholes of eq. 3-4). The loop then needs
    four elementwise operations a step."""
    T, B, _ = acts.shape
    H = cs.shape[-1]
    i, f, g, o = acts.chunk(4, dim=2)
    factors = torch.addcmul(acts, acts, acts, value=-1)             # s (1 - s), the sigmoid's derivative
    fi, ff, fg, fo = factors.chunk(4, dim=2)
    fi.mul_(g)
    ff.mul_(cs[:-1])
    torch.addcmul(i, i * g, g, value=-1, out=fg)                     # i (1 - g^2)
    fo.mul_(tanh_c)
    through_h = torch.addcmul(o, o * tanh_c, tanh_c, value=-1).addcmul_(fo, w_co)
    carry = torch.addcmul(f, fi, w_ci).addcmul_(ff, w_cf)

    d_gates = factors                               # each step's factors become its gradients, in place
    d_t, f3_t = d_gates.unbind(0), factors.view(T, B, 4, H)[:, :, :3].unbind(0)
    fo_t, th_t, ca_t, gh_t = fo.unbind(0), through_h.unbind(0), carry.unbind(0), grad_h.unbind(0)
    dh = gh_t[T - 1]
    for t in range(T - 1, -1, -1):
        dc.addcmul_(dh, th_t[t])
        f3_t[t].mul_(dc.unsqueeze(1))
        fo_t[t].mul_(dh)
        dc.mul_(ca_t[t])                                             # now dL/dc_{t-1} through step t
        if t:
            dh = back(d_t[t], gh_t[t - 1])
            if grad_c is not None:
                dc.add_(grad_c[t - 1])
    return d_gates, back(d_t[0]), dc


def _native_forward(acts, hs, cs, tanh_c, recurrent, w_ci, w_cf, w_co):
    """:func:`_torch_forward` by the compiled kernel, one call a step (pointers in bytes)."""
    T, B, G = acts.shape
    H = hs.shape[-1]
    step = native.kernels().peephole_forward_step
    a0, h0, c0, tc0 = (t.data_ptr() for t in (acts, hs, cs, tanh_c))
    peepholes = [w.data_ptr() for w in (w_ci, w_cf, w_co)]
    h_t = hs.unbind(0)
    for t in range(T):
        rec = recurrent(h_t[t])
        step(B, H, a0 + 4 * t * B * G, rec.data_ptr(), c0 + 4 * t * B * H, c0 + 4 * (t + 1) * B * H,
             h0 + 4 * (t + 1) * B * H, tc0 + 4 * t * B * H, *peepholes)


def _native_backward(acts, cs, tanh_c, grad_h, grad_c, dc, back, w_ci, w_cf, w_co):
    """:func:`_torch_backward` by the compiled kernel, one call a step (pointers in bytes)."""
    T, B, G = acts.shape
    H = cs.shape[-1]
    step = native.kernels().peephole_backward_step
    d_gates = torch.empty_like(acts)
    a0, g0, gh0, c0, tc0 = (t.data_ptr() for t in (acts, d_gates, grad_h, cs, tanh_c))
    peepholes = [w.data_ptr() for w in (w_ci, w_cf, w_co)]
    d_t = d_gates.unbind(0)
    rec = cs.new_zeros(B, H)                         # nothing comes back from after the last step
    for t in range(T - 1, -1, -1):
        step(B, H, a0 + 4 * t * B * G, g0 + 4 * t * B * G, gh0 + 4 * t * B * H, rec.data_ptr(), dc.data_ptr(),
             c0 + 4 * t * B * H, tc0 + 4 * t * B * H, *peepholes)
        rec = back(d_t[t])
        if t and grad_c is not None:
            dc.add_(grad_c[t - 1])
    return d_gates, rec, dc


def _time_major(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``x : (B, T, F)`` to ``(T, B, F)``, step t of sequence b reading frame ``frames[t, b]``."""
    return x[torch.arange(x.shape[0], device=x.device), frames]


def _batch_first(h: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_time_major`: ``(T, B, F)`` back to ``(B, T, F)`` in frame order."""
    return h[frames.t(), torch.arange(h.shape[1], device=h.device).unsqueeze(1)]


class _Reorder(torch.autograd.Function):
    """:func:`_time_major` (``to_time_major=True``) or :func:`_batch_first`, whose backward pass is
    the other one: a gather both ways (autograd's own backward for indexing scatters, with
    accumulation, several times slower on a CPU)."""

    @staticmethod
    def forward(ctx, x, frames, to_time_major):
        ctx.save_for_backward(frames)
        ctx.to_time_major = to_time_major
        return (_time_major if to_time_major else _batch_first)(x, frames)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (frames,) = ctx.saved_tensors
        return (_batch_first if ctx.to_time_major else _time_major)(grad, frames), None, None


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
        if self.impl == "fused":
            y, final = self._fused(x, x_lens, state)
            return y, final if return_final else None
        if self.reverse:
            x = reverse_padded(x, x_lens)
        if self.impl == "builtin":
            y, final = self._builtin(x, x_lens, state, return_final)
        else:
            y, final = self._loop(x, x_lens, state)
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

    def _fused(self, x, x_lens, state):
        """:class:`PeepholeLSTMFunction` over the frames in this direction's order."""
        cell = self.cell
        T, B = x.shape[1], x.shape[0]
        frames = _frames(x_lens, T, self.reverse)
        bias = cell.bias_ih + cell.bias_hh if cell.bias_ih is not None else x.new_zeros(4 * cell.hidden_size)
        h, c = PeepholeLSTMFunction.apply(
            _Reorder.apply(x, frames, True), state[0], state[1], cell.weight_ih, cell.weight_hh, bias,
            cell.weight_ci, cell.weight_cf, cell.weight_co,
        )
        y = _Reorder.apply(h, frames, False) * time_mask(x_lens, T).unsqueeze(-1).to(h.dtype)
        last, batch = x_lens - 1, torch.arange(B, device=x.device)   # the last step, in either direction
        return y, (h[last, batch], c[last, batch])

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
