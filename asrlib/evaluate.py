"""Scoring a trained network on a split: decode every utterance, count phone errors.

:func:`log_probs_of` runs a CTC network over a split once; :func:`score` decodes those outputs
with any decoder of :mod:`asrlib.ctc_decode`; :func:`score_transducer` decodes a transducer with
:mod:`asrlib.transducer_decode`. Both return the errors (phone error rate after folding to the
39 classes, with substitutions, deletions and insertions), the hypotheses and the decoding time,
counted by :func:`count`: the one counting path for chapters 6-8, ``python -m asrlib.run`` and
the trainer's dev scores (:mod:`asrlib.objectives`).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch
from torch import nn

from asrlib.ctc_decode import decoder
from asrlib.data import loader
from asrlib.metrics import ErrorCounts, phone_errors
from asrlib.runtime import evaluating, progress_bar


class Outputs(NamedTuple):
    """A split's network outputs: ``log_probs[i] : (T_i, V)`` float32 on the CPU, and the
    reference phones ``references[i]`` of utterance ``ids[i]``."""

    ids: list[str]
    log_probs: list[torch.Tensor]
    references: list[list[int]]

    def extend(self, log_probs: torch.Tensor, batch, ids: list[str] | None = None) -> None:
        """Append a batch's ``log_probs : (B, T, V)``, each cut to its length, and its references."""
        lp = log_probs.detach().float().cpu()
        self.log_probs.extend(lp[b, :n] for b, n in enumerate(batch.x_lens.tolist()))
        self.references.extend(batch.references())
        self.ids.extend(ids if ids is not None else [""] * len(lp))


class Score(NamedTuple):
    errors: ErrorCounts
    hypotheses: list[tuple[int, ...]]
    seconds: float


@torch.no_grad()
def log_probs_of(model: nn.Module, dataset, device: torch.device | str = "cpu", batch_size: int = 32) -> Outputs:
    """Run ``model`` (``(x, x_lens) -> (B, T, V)`` logits) over every utterance of ``dataset``."""
    outputs = Outputs([], [], [])
    with evaluating(model):
        for batch in loader(dataset, batch_size, shuffle=False):
            batch = batch.to(device)
            outputs.extend(model(batch.x, batch.x_lens).log_softmax(-1), batch)
    return outputs._replace(ids=list(dataset.ids))


def score(outputs: Outputs, phones, method: str = "beam", progress: bool = False, **decoder_kwargs) -> Score:
    """Decode ``outputs`` with ``method`` (``"greedy"``, ``"prefix"``, ``"beam"``; keyword
    arguments go to the decoder, e.g. ``beam=100``) and count errors against the references."""
    decode = decoder(method)
    start = time.perf_counter()
    hyps = [decode(lp, **decoder_kwargs)[0][0]
            for lp in progress_bar(outputs.log_probs, desc=method, disable=not progress, leave=False)]
    return count(outputs.references, hyps, phones, time.perf_counter() - start)


def count(references: list[list[int]], hypotheses: list, phones, seconds: float = 0.0) -> Score:
    """Errors of ``hypotheses`` (label tuples) against ``references``, folded to 39 classes."""
    return Score(phone_errors(references, hypotheses, phones), list(hypotheses), seconds)


@torch.no_grad()
def score_transducer(
    model: nn.Module, dataset, phones, method: str = "beam", device: torch.device | str = "cpu",
    batch_size: int = 32, progress: bool = False, **decoder_kwargs,
) -> Score:
    """Decode every utterance of ``dataset`` with a transducer (``method`` ``"greedy"``, a padded
    batch at a time, or ``"beam"``, one utterance at a time; keyword arguments go to the
    decoder, e.g. ``beam=100``) and count errors against the references."""
    from asrlib.transducer_decode import beam_search, greedy  # the transducer's decoders

    if method not in ("greedy", "beam"):
        raise ValueError(f"unknown method {method!r}; expected 'greedy' or 'beam'")
    refs, hyps = [], []
    start = time.perf_counter()
    with evaluating(model):
        for batch in progress_bar(loader(dataset, batch_size, shuffle=False), desc=method, disable=not progress,
                                  leave=False):
            batch = batch.to(device)
            refs += batch.references()
            if method == "greedy":
                hyps += [h for h, _ in greedy(model, batch.x, batch.x_lens, **decoder_kwargs)]
            else:
                hyps += [beam_search(model, x[:n], **decoder_kwargs)[0][0] for x, n in zip(batch.x, batch.x_lens.tolist())]
    return count(refs, hyps, phones, time.perf_counter() - start)
