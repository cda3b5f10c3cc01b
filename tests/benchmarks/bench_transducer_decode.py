"""Benchmark: the transducer's beam search (Graves 2012, Algorithm 1) at widths 1, 10 and 100.

Utterances per second on 300-frame utterances, with the network's work batched (one joint call
and one prediction-network step for all the hypotheses of a frame, states cached per prefix:
``asrlib.transducer_decode.NetworkScorer``) against one hypothesis at a time (the same cache,
one joint call per hypothesis), and greedy decoding of the same utterances as one batch. The
network is the book's CPU size (``Trans-1l-64h-nopeep``, 71 outputs), random weights with the
blank prior (so that the blank dominates, as in a trained network), and random 123-dimensional
inputs: decoding time depends on the sizes, not on what the weights learnt.

Not a test: run it (``make bench``) and record its output with the commit, device and date.

    python tests/benchmarks/bench_transducer_decode.py [--device cuda] [--utterances 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from asrlib.models import build_model
from asrlib.transducer_decode import NetworkScorer, greedy, search
from common import provenance, sync


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--utterances", type=int, default=4)
    p.add_argument("--frames", type=int, default=300)
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = build_model("Trans-1l-64h-nopeep", num_classes=71, init="torch").init_blank_prior_(9.0).to(device).eval()
    xs = torch.randn(a.utterances, a.frames, 123, device=device)
    print(f"# {provenance(device)}")
    print(f"# Trans-1l-64h-nopeep (random weights, blank prior), {a.utterances} utterances of {a.frames} frames")
    sync(device)
    start = time.perf_counter()
    greedy(model, xs)
    sync(device)
    g = a.utterances / (time.perf_counter() - start)
    print(f"{'decoder':28s} {'utt/s':>8s} {'joint calls/utt':>16s} {'vs one at a time':>17s}")
    print(f"{'greedy (one batch)':28s} {g:8.2f}")
    for beam in (1, 10, 100):
        rates = {}
        for batched in (True, False):
            if beam == 100 and not batched:
                n = 1                                    # slow: one utterance is enough to time it
            else:
                n = a.utterances
            calls = 0
            sync(device)
            start = time.perf_counter()
            for x in xs[:n]:
                scorer = NetworkScorer(model, x, batched=batched)
                search(len(scorer), 71, scorer, beam=beam, prefetch=scorer.prefetch)
                calls += scorer.joint_calls
            sync(device)
            rates[batched] = (n / (time.perf_counter() - start), calls / n)
        (fast, fast_calls), (slow, slow_calls) = rates[True], rates[False]
        print(f"{f'beam {beam}, batched':28s} {fast:8.2f} {fast_calls:16.0f} {fast / slow:16.1f}x")
        print(f"{f'beam {beam}, one at a time':28s} {slow:8.2f} {slow_calls:16.0f}")


if __name__ == "__main__":
    main()
