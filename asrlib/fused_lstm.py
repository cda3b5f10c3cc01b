"""The fast peephole LSTM: a whole sequence of eq. (3)-(7) with backpropagation through time by hand.

torch has no peephole LSTM, so :class:`asrlib.layers.Recurrent` (``impl="fused"``) runs this
module's :class:`PeepholeLSTMFunction` instead of a cell in a Python loop with autograd:

* one matrix product for the input projection of all frames, and the four gates in one product
  per step; on a CPU with oneDNN, with weights prepacked in oneDNN's blocked layout, as
  ``nn.LSTM`` itself runs (private operators, tried once and left for the plain product on any
  failure; ``ASRLIB_ONEDNN=0`` turns them off);
* on a CPU whose torch carries MKL (x86 builds), the whole forward sequence in one compiled call
  (:func:`_prepare`): MKL's packed product adds each step's recurrent part into its gates, the
  cells follow, no Python between steps; in inference a level's two directions run side by side,
  a core each (:func:`peephole_inference`);
* otherwise each step's elementwise work in one call of a compiled kernel (:mod:`asrlib.native`),
  or in a few in-place PyTorch operations where there is none (GPU, float64, no C compiler);
* a hand-written backward pass whose weight gradients are large matrix products after the loop.

On a CPU a train step costs about what ``nn.LSTM``'s does (``tests/benchmarks/RESULTS.md``).
Everything here is time-major: ``(T, B, ...)``. :class:`Reorder` moves a padded batch into the
order in which one direction reads it and back.
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from asrlib import native, runtime


def _onednn(t: torch.Tensor) -> bool:
    """Whether oneDNN's linear operators take ``t``: float32 on a CPU, oneDNN present and working,
    and not switched off with ``ASRLIB_ONEDNN=0``."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and _onednn_works()


@functools.cache
def _onednn_works() -> bool:
    """The operators used below are private (``torch.ops.mkldnn``): try them once on a small case
    against the plain product, and take the plain path on any failure or disagreement."""
    if not runtime.enabled(runtime.ONEDNN_ENV) or not torch.backends.mkldnn.is_available():
        return False
    try:
        mkldnn = torch.ops.mkldnn
        x, w, add = torch.randn(3, 5), torch.randn(4, 5), torch.randn(3, 4)
        packed = mkldnn._reorder_linear_weight(w, 3)
        sums = mkldnn._linear_pointwise.binary(x, add, packed, None, "add")
        gram = mkldnn._linear_pointwise(add.t(), x.t(), None, "none", [], "").t()
        return bool(torch.allclose(sums, x @ w.t() + add, atol=1e-5) and torch.allclose(gram, x.t() @ add, atol=1e-5))
    except Exception:  # noqa: BLE001 (a missing, renamed or broken private operator)
        return False


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
        peepholes = [w.contiguous() for w in (w_ci, w_cf, w_co)]
        acts, hs, cs, tanh_c, run = _prepare(x, h0, c0, weight_ih, weight_hh, bias, peepholes)
        run()
        ctx.save_for_backward(x, weight_ih, weight_hh, *peepholes, acts, hs, cs, tanh_c)
        return hs[1:], cs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h, grad_c):
        x, weight_ih, weight_hh, w_ci, w_cf, w_co, acts, hs, cs, tanh_c = ctx.saved_tensors
        T, B, I = x.shape
        H = hs.shape[-1]
        grad_h = grad_h.contiguous() if grad_h is not None else hs.new_zeros(T, B, H)
        dc = cs.new_empty(B, H).copy_(grad_c[T - 1]) if grad_c is not None else cs.new_zeros(B, H)
        if _mkl_ok(x):
            d_gates, grad_h0, grad_c0 = _mkl_backward(acts, cs, tanh_c, grad_h, grad_c, dc, weight_hh, w_ci, w_cf, w_co)
        else:
            back = _linear(weight_hh.t().contiguous(), B)                # d -> d @ W_hh (+ add)
            steps = _native_backward if _native_ok(x) else _torch_backward
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
    return native.serves(x, (torch.float32,))


def _mkl_ok(x: torch.Tensor) -> bool:
    """Whether a whole sequence ``x : (T, B, I)`` runs compiled: the kernels serve it, it has at least
    one step and one row (MKL takes no empty product), and torch's MKL is found."""
    return _native_ok(x) and x.shape[0] * x.shape[1] > 0 and native.mkl() is not None


def _prepare(x, h0, c0, weight_ih, weight_hh, bias, peepholes, threads: int = 0):
    """A forward sequence's buffers and the call that fills them: ``(acts, hs, cs, tanh_c, run)``.

    The input part of every frame's gates is computed here, in one product; ``run()`` then takes
    the steps, each adding the recurrent part and activating the gates: in one compiled call with
    MKL's products where :func:`_mkl_ok` (``threads > 0``: MKL uses that many threads, for
    directions run side by side), or step by step from Python (compiled steps between oneDNN's
    products, or PyTorch operations)."""
    T, B, I = x.shape
    H = h0.shape[1]
    acts = _linear(weight_ih, T * B, bias)(x.reshape(T * B, I)).view(T, B, 4 * H)
    hs = x.new_empty(T + 1, B, H)                # hs[0] = h0, hs[t + 1] = h_t
    cs = x.new_empty(T + 1, B, H)
    tanh_c = x.new_empty(T, B, H)
    hs[0], cs[0] = h0, c0
    if _mkl_ok(x):
        found = native.mkl()
        packed = native.pack_weight(found, weight_hh.detach().contiguous(), B)   # W_hh^T, for B rows
        args = (T, B, H, *(t.data_ptr() for t in (acts, hs, cs, tanh_c, packed)), found.compute, found.set_threads,
                threads, *(w.data_ptr() for w in peepholes))

        def run(sequence=native.kernels().peephole_forward_sequence, packed=packed):  # keeps the packing alive
            sequence(*args)
    else:
        steps = _native_forward if _native_ok(x) else _torch_forward
        run = functools.partial(steps, acts, hs, cs, tanh_c, _linear(weight_hh, B), *peepholes)
    return acts, hs, cs, tanh_c, run


def peephole_inference(runs: list[tuple]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Several forward sequences without autograd, e.g. the two directions of a bidirectional layer:
    ``runs`` holds :class:`PeepholeLSTMFunction`'s inputs per sequence, the result its ``(h, c)``.

    Where every sequence runs compiled (:func:`_mkl_ok`) and torch has a thread per sequence, they
    run side by side, each on its own share of the threads: a small product (16 x 250 by 250 x
    1000) does not use two cores well, and two independent sequences do."""
    together = len(runs) > 1 and torch.get_num_threads() >= len(runs) and all(_mkl_ok(r[0]) for r in runs)
    threads = torch.get_num_threads() // len(runs) if together else 0
    with torch.no_grad():
        parts = [_prepare(*r[:6], [w.contiguous() for w in r[6:]], threads) for r in runs]
        if together:
            native.side_by_side([p[-1] for p in parts])
        else:
            for p in parts:
                p[-1]()
    return [(hs[1:], cs[1:]) for _, hs, cs, _, _ in parts]


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


def _mkl_backward(acts, cs, tanh_c, grad_h, grad_c, dc, weight_hh, w_ci, w_cf, w_co):
    """:func:`_native_backward` in one compiled call, with MKL's products (``peephole_backward_sequence``)."""
    T, B, _ = acts.shape
    found = native.mkl()
    packed = native.pack_weight(found, weight_hh.detach().t().contiguous(), B)   # W_hh, for B rows
    d_gates, rec = torch.empty_like(acts), cs.new_empty(B, cs.shape[-1])
    grad_c = grad_c.contiguous() if grad_c is not None else None
    native.kernels().peephole_backward_sequence(
        T, B, cs.shape[-1], *(t.data_ptr() for t in (acts, d_gates, grad_h)), grad_c.data_ptr() if grad_c is not None else None,
        *(t.data_ptr() for t in (rec, dc, cs, tanh_c, packed)), found.compute, *(w.data_ptr() for w in (w_ci, w_cf, w_co)))
    return d_gates, rec, dc


def _time_major(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``x : (B, T, F)`` to ``(T, B, F)``, step t of sequence b reading frame ``frames[t, b]``."""
    return x[torch.arange(x.shape[0], device=x.device), frames]


def _batch_first(h: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_time_major`: ``(T, B, F)`` back to ``(B, T, F)`` in frame order."""
    return h[frames.t(), torch.arange(h.shape[1], device=h.device).unsqueeze(1)]


class Reorder(torch.autograd.Function):
    """:func:`_time_major` (``to_time_major=True``) or :func:`_batch_first`, whose backward pass is
    the other one; ``frames (T, B)`` is the frame each step reads (:func:`asrlib.layers.frame_order`): a gather both ways (autograd's own backward for indexing scatters, with
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
