"""Decoding the transducer: the beam search of Graves (2012), Algorithm 1.

The paper decodes both its CTC and its transducer networks with this search (width 100, the
n-best list sorted by ``Pr(y)`` without length normalisation). For CTC it reads the transducer's
``Pr(k|t,u)`` as CTC's ``Pr(k|t)``; taken literally that fails on a trained CTC network, which is
why :func:`asrlib.ctc_decode.beam_search` keeps CTC's own alignment rules.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from asrlib.ctc_decode import NEG_INF, NEGLIGIBLE, _logsumexp, _prepare


def transducer_beam_search(
    log_probs, beam: int = 100, blank: int = 0, nbest: int | None = None,
    prob_fn: Callable[[int, tuple[int, ...]], np.ndarray] | None = None,
) -> list[tuple[tuple[int, ...], float]]:
    """The transducer beam search of Graves (2012), Algorithm 1, taken literally.

    With ``prob_fn`` it decodes an RNN transducer. Without it, ``Pr(k|t,u) = Pr(k|t)`` read
    literally: a label does not consume a frame. On a trained CTC network that reading
    fails: at a spike frame the blank (the only way on to the next frame) has probability
    ~e^-8, so it emits the spike's label again and again. :func:`asrlib.ctc_decode.beam_search` is the reading
    that works, CTC's own alignment rules inside the same beam.

    Parameters
    ----------
    log_probs : array or Tensor, shape (T, V)
        ``ln Pr(k|t)``; only its length is used when ``prob_fn`` is given.
    beam : int
        W, the hypotheses kept after every frame (the paper: 100).
    nbest : int, optional
        How many hypotheses to return (default: all W).
    prob_fn : callable, optional
        ``prob_fn(t, y) -> ln Pr(k | t, y)`` over V, for a transducer whose output depends on
        the labels so far. Default: ``log_probs[t]``, the CTC case.

    Returns
    -------
    list of (labels, ln Pr(labels)), most probable first.

    Per frame t, with B the hypotheses after frame t - 1: each hypothesis first collects the
    probability of reaching it from its prefixes in B by emitting labels at frame t; then the
    most probable hypothesis of A is repeatedly taken out, moved to the new B with a blank
    (``* Pr(blank|t)``) and extended by every label k (``* Pr(k|t)``) back into A, until B holds
    W hypotheses more probable than any left in A. Extensions are generated lazily, in order
    of ``Pr(k|t)``, so only those that can still enter the beam are ever built; an extension
    that is already in B was counted by the prefix sums and is not added twice.
    """
    lp, labels = _prepare(log_probs, blank, beam)
    T = len(lp)
    get = prob_fn if prob_fn is not None else (lambda t, y: lp[t])
    hyps: dict[tuple[int, ...], float] = {(): 0.0}
    for t in range(T):
        # A = B, with the prefix sums: Pr(y) += Pr(y') Pr(y|y', t) for every proper prefix y' in A
        # (with the prefixes' scores from frame t - 1: a path through an intermediate prefix is
        # already in the product Pr(y|y', t))
        A = dict(hyps)
        for y in hyps:
            score = hyps[y]
            extension = 0.0
            for j in range(len(y) - 1, -1, -1):
                extension += get(t, y[:j])[y[j]]
                if extension < score - NEGLIGIBLE:
                    break
                prefix = hyps.get(y[:j])
                if prefix is not None:
                    score = _logsumexp(score, prefix + extension)
            A[y] = score
        original = set(hyps)
        # A as a max-heap of entries (-score, id, y, rank); rank -1 is y itself, rank r >= 0 its
        # r-th most probable extension, generated when its predecessor leaves the heap
        heap = [(-s, i, y, -1, None) for i, (y, s) in enumerate(A.items())]
        heapq.heapify(heap)
        counter = len(heap)
        new: dict[tuple[int, ...], float] = {}
        best_new: list[float] = []  # min-heap of the W best scores in the new B
        while heap:
            if len(best_new) >= beam and best_new[0] >= -heap[0][0]:
                break
            neg, _, y, rank, order = heapq.heappop(heap)
            score = -neg
            if rank >= 0:  # a lazy extension: build it, queue the next-best extension of its parent
                parent, dist = y
                k = int(order[rank])
                y = parent + (k,)
                if rank + 1 < len(order):
                    heapq.heappush(heap, (-(score - dist[k] + dist[order[rank + 1]]), counter, (parent, dist), rank + 1, order))
                    counter += 1
                if y in original:  # counted by the prefix sums
                    continue
            dist = get(t, y)
            blank_score = score + dist[blank]
            new[y] = _logsumexp(new.get(y, NEG_INF), blank_score)
            heapq.heappush(best_new, blank_score)
            if len(best_new) > beam:
                heapq.heappop(best_new)
            order = labels[np.argsort(-dist[labels], kind="stable")]
            heapq.heappush(heap, (-(score + dist[order[0]]), counter, (y, dist), 0, order))
            counter += 1
        hyps = dict(heapq.nlargest(beam, new.items(), key=lambda item: item[1]))
    ranked = sorted(hyps.items(), key=lambda item: -item[1])
    return ranked[: nbest or beam]
