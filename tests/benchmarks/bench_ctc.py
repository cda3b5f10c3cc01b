"""Benchmark: asrlib's CTC loss against F.ctc_loss, and its beam search against pyctcdecode.

1. ``asrlib.ctc.ctc_loss`` forward + backward against ``torch.nn.functional.ctc_loss`` at the
   paper's TIMIT scale: batch 16, 300 frames, 62 outputs, 36 phones per utterance.
2. ``asrlib.ctc_decode.beam_search`` at width 100 against pyctcdecode's beam search at the
   same width (no language model, no pruning of unlikely labels on either side), on peaky
   CTC-like outputs, utterances per second, and whether both find the same best labelling.

Not a test: run it (``make bench``) and record its output with the commit, device and date.

    python tests/benchmarks/bench_ctc.py [--device cuda] [--repeats 7] [--utterances 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from asrlib.ctc import ctc_loss
from asrlib.ctc_decode import beam_search
from common import provenance, sync


def time_loss(fn, logits, targets, in_lens, tg_lens, device):
    sync(device)
    start = time.perf_counter()
    x = logits.detach().requires_grad_(True)
    fn(x.log_softmax(-1), targets, in_lens, tg_lens).backward()
    sync(device)
    return time.perf_counter() - start


def peaky_outputs(rng, T=300, V=62, U=36):
    """Log-probabilities like a trained CTC network's: blank almost everywhere, a spike per phone."""
    logits = rng.normal(size=(T, V))
    logits[:, 0] += 6.0
    spikes = np.sort(rng.choice(np.arange(2, T - 2), size=U, replace=False))
    labels = rng.integers(1, V, size=U)
    logits[spikes, labels] += 9.0
    logits[spikes + 1, labels] += rng.uniform(0, 9.0, size=U)  # some spikes last two frames
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--beam", type=int, default=100)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# {provenance(device)}")

    torch.manual_seed(0)
    B, T, V, U = 16, 300, 62, 36
    logits = torch.randn(T, B, V, device=device)
    targets = torch.randint(1, V, (B, U), device=device)
    in_lens = torch.full((B,), T, dtype=torch.long, device=device)
    tg_lens = torch.full((B,), U, dtype=torch.long, device=device)
    times = {"F.ctc_loss (anchor)": [], "asrlib ctc_loss": []}
    fns = {"F.ctc_loss (anchor)": F.ctc_loss, "asrlib ctc_loss": ctc_loss}
    for i in range(args.repeats + 2):
        for name, fn in fns.items():
            t = time_loss(fn, logits, targets, in_lens, tg_lens, device)
            if i >= 2:
                times[name].append(t)
    anchor = statistics.median(times["F.ctc_loss (anchor)"])
    print(f"## CTC loss, forward + backward: batch {B}, {T} frames, {V} outputs, {U} labels")
    for name, ts in times.items():
        print(f"{name:28s} {statistics.median(ts) * 1e3:9.2f} ms {statistics.median(ts) / anchor:7.2f}x")

    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        print("## beam search: pyctcdecode is not installed (make bench installs it)")
        return
    rng = np.random.default_rng(0)
    utterances = [peaky_outputs(rng) for _ in range(args.utterances)]
    # pyctcdecode wants one character per label: 61 distinct characters, "" for the blank
    alphabet = [""] + [chr(0x100 + k) for k in range(1, V)]
    decoder = build_ctcdecoder(alphabet)
    start = time.perf_counter()
    ours = [beam_search(lp, beam=args.beam)[0][0] for lp in utterances]
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    theirs = [decoder.decode(lp, beam_width=args.beam, beam_prune_logp=-1e9, token_min_logp=-1e9) for lp in utterances]
    t_theirs = time.perf_counter() - start
    same = sum("".join(alphabet[k] for k in y) == text for y, text in zip(ours, theirs))
    print(f"## beam search, width {args.beam}: {args.utterances} utterances of {T} frames, {V} outputs")
    print(f"{'pyctcdecode (anchor)':28s} {args.utterances / t_theirs:9.2f} utt/s")
    print(f"{'asrlib beam_search':28s} {args.utterances / t_ours:9.2f} utt/s {t_theirs / t_ours:7.2f}x faster")
    print(f"same best labelling: {same}/{args.utterances}")


if __name__ == "__main__":
    main()
