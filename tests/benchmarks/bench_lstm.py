"""Benchmark: asrlib's LSTM layers against torch.nn.LSTM at the paper's CTC-3l-250h size.

Three bidirectional levels of 250 cells over 123 inputs, batch 16, 300 frames (the paper's
CTC-3l-250h acoustic network without its output layer). Every variant runs in this one process,
interleaved round by round, so that a busy machine slows them all alike; the script prints the
median time per train step (forward + backward) and per inference pass, and the ratio to
torch.nn.LSTM. Not a test: run it, and record its output with the commit, device and date.

    python tests/benchmarks/bench_lstm.py [--device cuda] [--repeats 10] [--threads 2] [--cuda-graph]

``--cuda-graph`` (CUDA only) also times the peephole network captured in CUDA graphs, one for
inference and one pair for a train step (``torch.cuda.make_graphed_callables``), replayed at this
one shape: what the launch overhead of its per-step PyTorch operations costs, not a path the
library takes.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from asrlib import fused_lstm, layers, native
from asrlib.layers import DeepRecurrent
from common import provenance, sync


@contextlib.contextmanager
def peephole_path(path: str):
    """Run the peephole LSTM on one path even where a faster one exists: ``"sequence"`` (as
    chosen: the whole forward sequence compiled, with MKL's products), ``"steps"`` (compiled steps
    between oneDNN's products, called from Python) or ``"torch"`` (PyTorch operations)."""
    saved = fused_lstm._native_ok, fused_lstm._mkl_ok
    if path == "steps":
        fused_lstm._mkl_ok = lambda x: False
    elif path == "torch":
        fused_lstm._native_ok = fused_lstm._mkl_ok = lambda x: False
    try:
        yield
    finally:
        fused_lstm._native_ok, fused_lstm._mkl_ok = saved


def time_once(model, x, device, train):
    with peephole_path(getattr(model, "path", "sequence")):
        return _time_once(model, x, device, train)


def first(out):
    """The output sequence of a layer stack (``nn.LSTM`` also returns its final states)."""
    return out[0] if isinstance(out, tuple) else out


def _time_once(model, x, device, train):
    sync(device)
    start = time.perf_counter()
    if train:
        model.zero_grad(set_to_none=True)
        first(model(x)).pow(2).mean().backward()
    else:
        with torch.no_grad():
            model(x)
    sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def unchecked_lengths():
    """``check_batch`` reads the lengths on the host to validate them, a synchronisation that a CUDA
    graph cannot capture; a graphed path would validate them once, before replaying."""
    saved = layers.check_batch
    layers.check_batch = lambda x, x_lens, size: x_lens if x_lens is not None else saved(x, None, size)  # no sync then
    try:
        yield
    finally:
        layers.check_batch = saved


def graphed_times(model, x, repeats: int) -> tuple[float, float]:
    """Median train-step and inference times of ``model`` replayed from CUDA graphs at ``x``'s shape."""
    with unchecked_lengths():
        return _graphed_times(model, x, repeats)


def _graphed_times(model, x, repeats: int) -> tuple[float, float]:
    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):  # warm-up outside the capture: workspaces, cuBLAS handles
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        replayed = first(model(static_x))
    trained = torch.cuda.make_graphed_callables(model, (static_x,))
    # the replays against eager runs: the output, and the weight gradients of one train step
    graph.replay()
    with torch.no_grad():
        output_gap = (replayed - first(model(static_x))).abs().max().item()
    grads = []
    for step in (model, trained):
        model.zero_grad(set_to_none=False)
        first(step(static_x)).pow(2).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    gradient_gap = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item() for a, b in zip(*grads))
    print(f"# {type(model).__name__} replayed from CUDA graphs: output within {output_gap:.1e} of the eager run's, "
          f"weight gradients within {gradient_gap:.1e} (relative to each one's largest)")
    times = {"train": [], "inference": []}
    for _ in range(repeats + 2):
        for mode in times:
            torch.cuda.synchronize()
            start = time.perf_counter()
            if mode == "train":
                model.zero_grad(set_to_none=False)
                first(trained(static_x)).pow(2).mean().backward()
            else:
                graph.replay()
            torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - start)
    return statistics.median(times["train"][2:]), statistics.median(times["inference"][2:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=250)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--with-loop", action="store_true", help="also time the readable per-step autograd loop")
    parser.add_argument("--cuda-graph", action="store_true", help="also time the peephole network replayed from CUDA graphs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.frames, 123, device=device)
    models = {
        "torch.nn.LSTM (anchor)": nn.LSTM(123, args.hidden, args.levels, bidirectional=True, batch_first=True),
        "asrlib LSTM, no peepholes": DeepRecurrent("lstm", 123, args.hidden, args.levels, peephole=False),
        "asrlib LSTM, peepholes (fused)": DeepRecurrent("lstm", 123, args.hidden, args.levels, peephole=True),
    }
    if native.kernels() is not None and device.type == "cpu":
        if native.mkl() is not None:
            models["asrlib LSTM, peepholes (compiled steps)"] = DeepRecurrent("lstm", 123, args.hidden, args.levels,
                                                                             peephole=True)
            models["asrlib LSTM, peepholes (compiled steps)"].path = "steps"
        models["asrlib LSTM, peepholes (PyTorch steps)"] = DeepRecurrent("lstm", 123, args.hidden, args.levels, peephole=True)
        models["asrlib LSTM, peepholes (PyTorch steps)"].path = "torch"
    if args.with_loop:
        models["asrlib LSTM, peepholes (loop)"] = DeepRecurrent("lstm", 123, args.hidden, args.levels, impl="loop", peephole=True)
    models = {k: m.to(device) for k, m in models.items()}
    results = {}
    for mode in ("train", "inference"):
        times = {k: [] for k in models}
        for _ in range(2):  # warm-up
            for k, m in models.items():
                time_once(m, x, device, mode == "train")
        for _ in range(args.repeats):
            for k, m in models.items():
                times[k].append(time_once(m, x, device, mode == "train"))
        results[mode] = {k: statistics.median(v) for k, v in times.items()}

    print(f"# LSTM benchmark: {args.levels} bidirectional levels x {args.hidden} cells, 123 inputs, "
          f"batch {args.batch}, {args.frames} frames")
    print(f"# {provenance(device)}, median of {args.repeats}")
    print(f"# peephole steps: {native.status() if device.type == 'cpu' else 'PyTorch operations'}")
    if device.type == "cpu":
        print(f"# peephole sequence: {'compiled, with MKL from torch' if native.mkl() else 'no MKL: compiled steps'}; "
              "inference runs a level's two directions side by side")
    anchor = "torch.nn.LSTM (anchor)"
    print(f"{'variant':38s} {'train step':>12s} {'ratio':>7s} {'inference':>12s} {'ratio':>7s}")
    for k in models:
        tr, inf = results["train"][k], results["inference"][k]
        print(f"{k:38s} {tr * 1e3:10.1f}ms {tr / results['train'][anchor]:6.2f}x "
              f"{inf * 1e3:10.1f}ms {inf / results['inference'][anchor]:6.2f}x")
    if args.cuda_graph and device.type == "cuda":
        for k in ("asrlib LSTM, peepholes (fused)", anchor):
            try:
                tr, inf = graphed_times(models[k], x, args.repeats)
            except Exception as e:  # noqa: BLE001 (a capture that fails is a finding too)
                print(f"{k + ', CUDA graph':38s} failed: {type(e).__name__}: {str(e)[:200]}")
                continue
            print(f"{k.replace(' (anchor)', '').replace('asrlib LSTM, ', '') + ', CUDA graph':38s} {tr * 1e3:10.1f}ms {tr / results['train'][anchor]:6.2f}x "
                  f"{inf * 1e3:10.1f}ms {inf / results['inference'][anchor]:6.2f}x")


if __name__ == "__main__":
    main()
