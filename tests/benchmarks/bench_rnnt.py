"""Benchmark: the transducer loss, fused and unfused, against a straightforward autograd loop.

At a TIMIT-sized batch (B 8, T 300, U 40, V 62): forward + backward time, and the peak memory
beyond the logits and their gradient, which every transducer loss must hold (the B x T x (U+1)
x V tensor is the transducer's memory problem: torchaudio, warp-transducer and NeMo all build
it; k2's pruned loss exists because it runs out of memory). Goals: under 40 ms on 2 CPU cores,
and extra peak memory under 25% of the logits tensor.

* ``fused``: ``asrlib.transducer.rnnt_loss`` on logits (log-softmax inside, gradient with
  respect to the logits in closed form, never storing the log-probabilities);
* ``unfused``: ``log_softmax`` by torch, then ``rnnt_loss(..., fused_log_softmax=False)``;
* ``autograd loop``: log_softmax, then alpha node by node over the lattice (loops over t and u,
  vectorised over the batch), and autograd's backward: what one writes first;
* ``torchaudio (anchor)``: ``torchaudio.functional.rnnt_loss``, the library loss (its own CPU and
  CUDA kernels), where torchaudio is installed; the book does not install it. Ratios are then
  against it, else against ``fused``.

Peak memory is read in a fresh process for each (the high-water mark of its resident set,
VmHWM, reset after the inputs are made; glibc's malloc set to return large blocks to the system
at once), so one measurement cannot hide another. On CUDA, torch's own peak counter.
Not a test: run it (``make bench``) and record its output with the commit, device and date.

    python tests/benchmarks/bench_rnnt.py [--device cuda] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from asrlib.transducer import rnnt_loss
from common import provenance, sync

B, T, U, V = 8, 300, 40, 62
ANCHOR = "torchaudio (anchor)"


def loop_loss(logits, targets, T_lens, U_lens):
    """The straightforward transducer loss: alpha(t, u) one node at a time, autograd for the rest."""
    lp = logits.log_softmax(-1)
    Bn, Tn, U1, _ = lp.shape
    batch = torch.arange(Bn)
    blank = lp[..., 0]
    label = lp[:, :, :-1].gather(3, targets[:, None, :, None].expand(Bn, Tn, U1 - 1, 1)).squeeze(3)
    alpha = [[None] * U1 for _ in range(Tn)]
    for t in range(Tn):
        for u in range(U1):
            if t == 0 and u == 0:
                alpha[t][u] = lp.new_zeros(Bn)
                continue
            terms = []
            if t:
                terms.append(alpha[t - 1][u] + blank[:, t - 1, u])
            if u:
                terms.append(alpha[t][u - 1] + label[:, t, u - 1])
            alpha[t][u] = terms[0] if len(terms) == 1 else torch.logaddexp(*terms)
    grid = torch.stack([torch.stack(row, 1) for row in alpha], 1)           # (B, T, U+1)
    last = grid[batch, T_lens - 1, U_lens] + blank[batch, T_lens - 1, U_lens]
    return -last.sum()


def inputs(device):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, U + 1, V, generator=g).to(device)
    targets = torch.randint(1, V, (B, U), generator=g).to(device)
    T_lens = torch.tensor([T] + [T - 10 * k for k in range(1, B)], device=device)
    U_lens = torch.tensor([U] + [U - 2 * k for k in range(1, B)], device=device)
    return logits, targets, T_lens, U_lens


def torchaudio_loss():
    """``torchaudio.functional.rnnt_loss``, or None where torchaudio (or its loss) is missing."""
    try:
        from torchaudio.functional import rnnt_loss as theirs
    except ImportError:
        return None
    return theirs


def run(name, logits, targets, T_lens, U_lens):
    x = logits.detach().requires_grad_(True)
    if name == ANCHOR:
        loss = torchaudio_loss()(x, targets.int(), T_lens.int(), U_lens.int(), blank=0, reduction="sum")
    elif name == "fused":
        loss = rnnt_loss(x, targets, T_lens, U_lens, reduction="sum")
    elif name == "unfused":
        loss = rnnt_loss(x.log_softmax(-1), targets, T_lens, U_lens, reduction="sum", fused_log_softmax=False)
    else:
        loss = loop_loss(x, targets, T_lens, U_lens)
    loss.backward()
    return loss.item(), x.grad


def timed(name, args, device, repeats):
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run(name, *args)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _memory(field: str) -> int:
    """A line of /proc/self/status in bytes. (Not getrusage's ru_maxrss: a child started from a
    large parent inherits the parent's peak there.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_child(name: str, device: str) -> None:
    """In a fresh process: the peak memory beyond the logits and a tensor of their size (the
    gradient), printed as JSON."""
    device = torch.device(device)
    args = inputs(device)
    small = [a[:2, :20, :5].contiguous() if a.ndim == 4 else a[:2, :4] if a.ndim == 2 else a[:2].clamp(max=20 if k == 2 else 4)
             for k, a in enumerate(args)]
    run(name, *small)                                         # libraries and thread pools start outside the count
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) + args[0].numel() * args[0].element_size()
        run(name, *args)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        grad = torch.ones_like(args[0])                       # what the gradient will take, touched
        base = _memory("VmRSS")
        del grad
        Path("/proc/self/clear_refs").write_text("5")         # the high-water mark starts again here
        run(name, *args)
        peak = _memory("VmHWM")
    print(json.dumps({"extra": max(peak - base, 0)}))


def peak(name: str, device: torch.device) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, __file__, "--child", name, "--device", str(device)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["extra"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return peak_child(a.child, a.device)
    device = torch.device(a.device)
    args = inputs(device)
    size = args[0].numel() * args[0].element_size()
    print(f"# {provenance(device)}")
    print(f"# B {B}, T {T}, U {U}, V {V}: logits {tuple(args[0].shape)} float32 = {size / 2**20:.1f} MiB")
    names = ("autograd loop", "fused", "unfused") + ((ANCHOR,) if torchaudio_loss() is not None else ())
    if ANCHOR not in names:
        print("# torchaudio is not installed: no anchor, ratios against fused")
    ref_loss, ref_grad = run("autograd loop", *args)
    for name in names[1:]:
        loss, grad = run(name, *args)
        print(f"# {name} against the autograd loop: loss {loss:.6g} ({abs(loss - ref_loss) / abs(ref_loss):.1e} relative), "
              f"gradient at most {(grad - ref_grad).abs().max().item():.1e} apart")
        if name != ANCHOR:  # ours must agree; the anchor's own accuracy is reported, not asserted
            assert abs(loss - ref_loss) < 1e-3 * abs(ref_loss), (name, loss, ref_loss)
            assert torch.allclose(grad, ref_grad, atol=1e-4), name
    results = {}
    for name in names:
        seconds = timed(name, args, device, 1 if name == "autograd loop" else a.repeats)
        results[name] = (seconds, peak(name, device))
    base = results[ANCHOR if ANCHOR in results else "fused"][0]
    print(f"{'':20s} {'fwd+bwd':>10s} {'ratio':>9s} {'extra peak':>11s} {'of logits':>10s}")
    for name, (seconds, extra) in results.items():
        print(f"{name:20s} {1e3 * seconds:8.1f} ms {seconds / base:8.2f}x {extra / 2**20:8.1f} MiB {extra / size:9.0%}")
    fused_s, fused_extra = results["fused"]
    print(f"goals: fused fwd+bwd {1e3 * fused_s:.1f} ms (goal < 40 ms on 2 CPU cores); "
          f"extra peak {fused_extra / size:.0%} of the logits (goal < 25%)")


if __name__ == "__main__":
    main()
