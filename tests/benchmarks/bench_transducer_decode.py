"""Benchmark: the transducer's beam search (Graves 2012, Algorithm 1) at widths 1, 10 and 100.

Utterances per second on 300-frame utterances, with the network's work batched (one joint call
and one prediction-network step for all the hypotheses of a frame, states cached per prefix:
``asrlib.transducer_decode.NetworkScorer``) against one hypothesis at a time (the same cache,
one joint call per hypothesis), and greedy decoding of the same utterances, one at a time. The
network is the book's CPU size (``Trans-1l-64h-nopeep``, 71 outputs): by default random weights
with the blank prior and random 123-dimensional inputs; with ``--weights`` a trained network's
``model.pt`` on real test utterances. The two differ a lot: a trained network's peaked outputs
make the search take many more extensions a frame (see ``tests/benchmarks/RESULTS.md``).

Not a test: run it (``make bench``) and record its output with the commit, device and date.

    python tests/benchmarks/bench_transducer_decode.py [--device cuda] [--utterances 4] [--weights model.pt]
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
    p.add_argument("--weights", default=None, help="a trained Trans-1l-64h-nopeep's model.pt (python -m asrlib.run); "
                                                    "then the inputs are the CI corpus's first test utterances")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = build_model("Trans-1l-64h-nopeep", num_classes=71, init="torch").init_blank_prior_(9.0)
    print(f"# {provenance(device)}")
    if a.weights:
        from asrlib.corpus import load_corpus
        from asrlib.data import SpeechDataset

        model.load_state_dict(torch.load(a.weights, weights_only=True, map_location="cpu"))
        test = SpeechDataset(load_corpus(size="ci"), "test")
        xs = [test[k].x.to(device) for k in range(a.utterances)]
        print(f"# Trans-1l-64h-nopeep trained ({a.weights}), the first {a.utterances} test utterances of the CI corpus "
              f"({sum(len(x) for x in xs) // a.utterances} frames on average)")
    else:
        xs = torch.randn(a.utterances, a.frames, 123, device=device)
        print(f"# Trans-1l-64h-nopeep (random weights, blank prior), {a.utterances} utterances of {a.frames} frames")
    model = model.to(device).eval()
    sync(device)
    start = time.perf_counter()
    for x in xs:
        greedy(model, x[None])
    sync(device)
    g = a.utterances / (time.perf_counter() - start)
    print(f"{'decoder':28s} {'utt/s':>8s} {'joint calls/utt':>16s} {'vs one at a time':>17s}")
    print(f"{'greedy':28s} {g:8.2f}")
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
