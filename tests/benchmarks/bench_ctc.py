"""Benchmark: asrlib's CTC loss against F.ctc_loss, and its beam search against the real peers.

1. ``asrlib.ctc.ctc_loss`` forward + backward against ``torch.nn.functional.ctc_loss`` at the
   paper's TIMIT scale: batch 16, 300 frames, 62 outputs, 36 phones per utterance; with the
   compiled kernel (``asrlib/ctc.c``) and with the tensor loop that CUDA runs.
2. ``asrlib.ctc_decode.beam_search`` against the decoders a user would pick, at widths 10 and
   100 (compiled, ``asrlib/ctc_beam.c``; with its final beam re-ranked by exact probability,
   ``rescore=True``; and its numpy loop): pyctcdecode with its default
   pruning, and flashlight-text's C++ ``LexiconFreeDecoder`` (no language model, every token at
   every frame, no threshold, log-add merging), both installed for the benchmark only
   (``make bench``). On a trained network's test outputs and on
   synthetic peaky outputs: utterances per second, the phone error rate, and how often each
   finds the most probable labelling (exact CTC probability) known from all of them and a much
   wider search.

Not a test: run it (``make bench``) and record its output with the commit, device and date.

    python tests/benchmarks/bench_ctc.py [--device cuda] [--repeats 7] [--utterances 40] [--widths 10 100] [--loss-only]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from asrlib import ctc_decode
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
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--widths", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--loss-only", action="store_true", help="time the loss only (the decoders run on the CPU)")
    parser.add_argument("--reference-beam", type=int, default=1000, help="width of the search that defines 'most probable'")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# {provenance(device)}")

    torch.manual_seed(0)
    B, T, V, U = 16, 300, 62, 36
    logits = torch.randn(T, B, V, device=device)
    targets = torch.randint(1, V, (B, U), device=device)
    in_lens = torch.full((B,), T, dtype=torch.long, device=device)
    tg_lens = torch.full((B,), U, dtype=torch.long, device=device)
    fns = {"F.ctc_loss (anchor)": F.ctc_loss, "asrlib ctc_loss": ctc_loss, "asrlib ctc_loss, tensor loop": tensor_loop_loss}
    times = {name: [] for name in fns}
    for i in range(args.repeats + 2):
        for name, fn in fns.items():
            t = time_loss(fn, logits, targets, in_lens, tg_lens, device)
            if i >= 2:
                times[name].append(t)
    anchor = statistics.median(times["F.ctc_loss (anchor)"])
    print(f"## CTC loss, forward + backward: batch {B}, {T} frames, {V} outputs, {U} labels")
    for name, ts in times.items():
        print(f"{name:28s} {statistics.median(ts) * 1e3:9.2f} ms {statistics.median(ts) / anchor:7.2f}x")

    if args.loss_only:
        return
    for outputs_name, utterances, references in decoding_sets(args.utterances, device):
        bench_beam_search(outputs_name, utterances, references, args.widths, args.reference_beam)


def decoding_sets(n: int, device):
    """The outputs the decoders are compared on: a trained network's on the synthetic test split
    (chapter 6's recipe, the weights committed by ``python -m asrlib.experiments robustness``), and
    synthetic peaky outputs. Yields (name, [log_probs (T, V) float32 numpy], references or None)."""
    rng = np.random.default_rng(0)
    yield "synthetic peaky outputs", [peaky_outputs(rng).astype(np.float32) for _ in range(n)], None
    from asrlib.corpus import load_corpus
    from asrlib.data import SpeechDataset
    from asrlib.evaluate import log_probs_of
    from asrlib.experiments import committed
    from asrlib.robustness import load_robust_model

    found = committed("robustness-book")
    if found is None:
        print("## no committed chapter-6 network (results/robustness-book.json): only the synthetic outputs")
        return
    corpus = load_corpus(size="ci")
    model = load_robust_model(*found, "none", corpus.phones.num_classes)
    outputs = log_probs_of(model, SpeechDataset(corpus, "test").head(n), device)
    yield ("chapter 6's network on the synthetic test split", [lp.numpy() for lp in outputs.log_probs],
           (outputs.references, corpus.phones))


def collapse_path(path, blank=0):
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(int(k))
        prev = k
    return tuple(out)


def exact_log_prob(lp: np.ndarray, labels) -> float:
    """ln Pr(labels | x), summed over every alignment (the CTC forward pass, in float64)."""
    x = torch.from_numpy(lp).double()
    if not labels:
        return float(x[:, 0].sum())
    y = torch.tensor([labels])
    return -float(ctc_loss(x, y[0], [len(x)], [len(labels)], reduction="sum"))


def numpy_search(lp: np.ndarray, width: int):
    """asrlib's beam search without its compiled kernel: the numpy loop over frames."""
    lp, labels = ctc_decode._prepare(lp, 0, width)
    return ctc_decode._beam_search_numpy(lp, labels, width, 0, None)[0][0]


def tensor_loop_loss(*args):
    """asrlib's CTC loss without its compiled kernel: the tensor loop over frames."""
    return ctc_loss(*args, compiled=False)


def peers(V: int, width: int):
    """The decoders a user would pick, at their defaults but for the width: name -> decode(lp) -> labels."""
    decoders = {"asrlib beam_search": lambda lp: beam_search(lp, beam=width)[0][0],
                "asrlib beam_search, rescored": lambda lp: beam_search(lp, beam=width, rescore=True)[0][0],
                "asrlib beam_search, numpy loop": lambda lp: numpy_search(lp, width)}
    try:
        from pyctcdecode import build_ctcdecoder

        alphabet = [""] + [chr(0x100 + k) for k in range(1, V)]  # one character per label, "" the blank
        index = {c: k for k, c in enumerate(alphabet)}
        decoder = build_ctcdecoder(alphabet)
        decoders["pyctcdecode (defaults)"] = lambda lp: tuple(index[c] for c in decoder.decode(lp, beam_width=width))
    except ImportError:
        print("# pyctcdecode is not installed (make bench installs it)")
    try:
        from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions, ZeroLM

        # no language model; every token considered at every frame (beam_size_token = V), no score
        # threshold, hypotheses that reach the same labelling merged by log-add, as CTC sums them
        options = LexiconFreeDecoderOptions(beam_size=width, beam_size_token=V, beam_threshold=1e30, lm_weight=0.0,
                                            sil_score=0.0, log_add=True, criterion_type=CriterionType.CTC)
        flashlight = LexiconFreeDecoder(options, ZeroLM(), 0, 0, [])

        def decode(lp):
            lp = np.ascontiguousarray(lp, dtype=np.float32)
            return collapse_path(flashlight.decode(lp.ctypes.data, lp.shape[0], lp.shape[1])[0].tokens)

        decoders["flashlight-text LexiconFreeDecoder"] = decode
    except ImportError:
        print("# flashlight-text is not installed (make bench installs it)")
    return decoders


def bench_beam_search(name, utterances, references, widths, reference_beam):
    from asrlib.metrics import phone_errors

    V = utterances[0].shape[1]
    best = [beam_search(lp, beam=reference_beam)[0][0] for lp in utterances]  # the most probable labelling found
    best_lp = [exact_log_prob(lp, y) for lp, y in zip(utterances, best)]
    print(f"## beam search on {name}: {len(utterances)} utterances, {V} outputs; 'most probable': the labelling of "
          f"highest exact CTC probability among each decoder's and a width-{reference_beam} search's")
    print(f"{'decoder':36s} {'width':>5s} {'utt/s':>8s} {'vs flashlight':>13s} {'PER':>6s} {'most probable':>13s}")
    for width in widths:
        rows = {}
        for decoder, decode in peers(V, width).items():
            decode(utterances[0])  # warm up
            start = time.perf_counter()
            hyps = [decode(lp) for lp in utterances]
            rows[decoder] = (len(utterances) / (time.perf_counter() - start), hyps)
        scores = {d: [exact_log_prob(lp, y) for lp, y in zip(utterances, hyps)] for d, (_, hyps) in rows.items()}
        top = [max([b, *(scores[d][i] for d in rows)]) for i, b in enumerate(best_lp)]
        anchor = rows.get("flashlight-text LexiconFreeDecoder", (None,))[0]
        for decoder, (speed, hyps) in rows.items():
            found = sum(abs(v - t) < 1e-6 for v, t in zip(scores[decoder], top))
            per = (f"{100 * phone_errors(references[0], hyps, references[1]).rate:5.1f}%" if references else "     -")
            ratio = f"{speed / anchor:12.2f}x" if anchor else f"{'-':>13s}"
            print(f"{decoder:36s} {width:5d} {speed:8.1f} {ratio} {per} {found:6d}/{len(utterances)}")


if __name__ == "__main__":
    main()
