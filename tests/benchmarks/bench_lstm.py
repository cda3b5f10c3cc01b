"""Benchmark: asrlib's LSTM layers against torch.nn.LSTM at the paper's CTC-3l-250h size.

Three bidirectional levels of 250 cells over 123 inputs, batch 16, 300 frames (the paper's
CTC-3l-250h acoustic network without its output layer). Every variant runs in this one process,
interleaved round by round, so that a busy machine slows them all alike; the script prints the
median time per train step (forward + backward) and per inference pass, and the ratio to
torch.nn.LSTM. Not a test: run it, and record its output with the commit, device and date.

    python tests/benchmarks/bench_lstm.py [--device cuda] [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time

import torch
from torch import nn

from asrlib.cells import LSTMCell
from asrlib.layers import Recurrent


class StackedBLSTM(nn.Module):
    """Deep bidirectional LSTM from asrlib layers: every level reads both directions below."""

    def __init__(self, input_size, hidden, levels, peephole, impl="auto"):
        super().__init__()
        self.layers = nn.ModuleList()
        size = input_size
        for _ in range(levels):
            self.layers.append(nn.ModuleList([
                Recurrent(LSTMCell(size, hidden, peephole=peephole), reverse=rev, impl=impl) for rev in (False, True)
            ]))
            size = 2 * hidden

    def forward(self, x, x_lens=None):
        for fwd, bwd in self.layers:
            x = torch.cat([fwd(x, x_lens)[0], bwd(x, x_lens)[0]], dim=-1)
        return x


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_once(model, x, device, train):
    sync(device)
    start = time.perf_counter()
    if train:
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.pow(2).mean().backward()
    else:
        with torch.no_grad():
            model(x)
    sync(device)
    return time.perf_counter() - start


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.frames, 123, device=device)
    models = {
        "torch.nn.LSTM (anchor)": nn.LSTM(123, args.hidden, args.levels, bidirectional=True, batch_first=True),
        "asrlib LSTM, no peepholes": StackedBLSTM(123, args.hidden, args.levels, peephole=False),
        "asrlib LSTM, peepholes (fused)": StackedBLSTM(123, args.hidden, args.levels, peephole=True),
    }
    if args.with_loop:
        models["asrlib LSTM, peepholes (loop)"] = StackedBLSTM(123, args.hidden, args.levels, peephole=True, impl="loop")
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

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# LSTM benchmark: {args.levels} bidirectional levels x {args.hidden} cells, 123 inputs, "
          f"batch {args.batch}, {args.frames} frames")
    print(f"# device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"commit {commit}, {time.strftime('%Y-%m-%d')}, median of {args.repeats}")
    anchor = "torch.nn.LSTM (anchor)"
    print(f"{'variant':34s} {'train step':>12s} {'ratio':>7s} {'inference':>12s} {'ratio':>7s}")
    for k in models:
        tr, inf = results["train"][k], results["inference"][k]
        print(f"{k:34s} {tr * 1e3:10.1f}ms {tr / results['train'][anchor]:6.2f}x "
              f"{inf * 1e3:10.1f}ms {inf / results['inference'][anchor]:6.2f}x")


if __name__ == "__main__":
    main()
