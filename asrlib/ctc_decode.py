"""Decoding CTC outputs (section 3.3): best path, prefix search, and the paper's beam search.

All three take one utterance's ``log_probs : (T, V)`` (``ln Pr(k|t)``); :func:`decode_batch`
runs any of them over a batch ``(T, B, V)`` with lengths.

* :func:`greedy`, best path decoding: the most probable label at every frame, collapsed by B.
  Fast, but it finds the most probable *alignment*, not the most probable *labelling*.
* :func:`prefix_search`, Graves et al. (2006): a best-first search over label prefixes with
  the exact CTC prefix probabilities; it finds the most probable labelling given enough
  expansions (capped by ``max_expansions``).
* :func:`beam_search`, the paper's decoder: a beam of W label sequences, each scored by the
  CTC probability of its alignments that survive the pruning (a lower bound of ``Pr(y|x)``,
  exact when no alignment of y was pruned), n-best list sorted by it, no length
  normalisation, W = 100 in the paper. The paper describes it as the transducer's beam search (Graves 2012) with
  ``Pr(k|t,u) = Pr(k|t)``; read literally (:func:`asrlib.transducer_decode.transducer_beam_search`, where a label does
  not consume a frame) that fails on a trained CTC network, which puts almost no blank on a
  spike frame and so repeats the spike's label without end. :func:`beam_search` keeps CTC's
  own alignment rules inside the same beam.

Hypotheses are tuples of labels; scores are natural logs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np
import torch

from asrlib import native
from asrlib.ctc import collapse

NEG_INF = -math.inf
# Beyond this many nats below a hypothesis, another path's probability cannot change its
# float64 log score (e^-40 ~ 4e-18): the prefix sums of the beam search stop there.
NEGLIGIBLE = 40.0


def _as_numpy(log_probs) -> np.ndarray:
    if isinstance(log_probs, torch.Tensor):
        log_probs = log_probs.detach().to("cpu", torch.float64).numpy()
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be one utterance of shape (T, V), got {log_probs.shape}")
    return log_probs


def _prepare(log_probs, blank: int, beam: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check a decoder's arguments; return ``log_probs`` as float64 numpy and the labels
    other than the blank."""
    lp = _as_numpy(log_probs)
    if beam is not None and beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    V = lp.shape[1]
    if not 0 <= blank < V:
        raise ValueError(f"blank must lie in 0..{V - 1}, got {blank}")
    return lp, np.array([k for k in range(V) if k != blank])


def _logsumexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def greedy(log_probs, blank: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """Best path: ``[(labels, ln Pr(best path))]``."""
    lp = _as_numpy(log_probs)
    path = lp.argmax(1)
    return [(tuple(collapse(path.tolist(), blank)), float(lp[np.arange(len(lp)), path].sum()))]


def beam_search(log_probs, beam: int = 100, blank: int = 0, nbest: int | None = None,
                rescore: bool = False, lm=None, lm_weight: float = 1.0,
                insertion_bonus: float = 0.0) -> list[tuple[tuple[int, ...], float]]:
    """The paper's beam search for CTC: ``[(labels, score)]``, best first, where the score is
    ``ln`` of the summed probability of the labelling's alignments that stayed in the beam (at
    most ``ln Pr(labels|x)``, equal when none was pruned).

    A beam of W label sequences with the CTC probabilities of their surviving paths, each split into
    the paths ending in a blank (``pb``) and in its last label (``pn``). Per frame a sequence
    stays (a blank, or its last label repeated, which B merges) or grows by a label k; growing
    by its own last label needs a blank in between, so only ``pb`` feeds it. Paths reaching the
    same sequence are summed. The W most probable sequences are kept, sorted by ``Pr(y)``
    without length normalisation; W = 100 in the paper.

    ``rescore=True`` re-ranks the final W labellings by their exact ``ln Pr(labels|x)`` (CTC's
    forward pass over all their alignments, :func:`rescored`), which become the scores: pruning
    can leave a labelling's beam score below another's although its full probability is higher.

    Vectorised: the W x K extension scores of a frame are one numpy operation. A new sequence
    has a single parent, so only the W best extensions (and those that land on a sequence
    already in the beam) can survive the cut to W, and only they are built: the result is the
    same as building all W x K. Where :mod:`asrlib.native` has its kernels, the same search runs
    compiled (``ctc_beam.c``, tested against this one).

    With a language model ``lm`` (:class:`asrlib.ngram.PhoneNgram`, or anything with its
    ``log_probs(prefix)``), each growth of a sequence by a label k is weighed by
    ``P_LM(k|sequence) ** lm_weight * exp(insertion_bonus)`` (shallow fusion, Hannun et al. 2014):
    the scores become ``ln Pr(y|x) + lm_weight ln P_LM(y) + insertion_bonus |y|``, over the
    surviving alignments. That search runs in numpy.
    """
    lp, labels = _prepare(log_probs, blank, beam)
    if lm is not None:
        if rescore:
            raise ValueError("rescore=True re-ranks by the acoustic probability alone; it cannot be used with an lm")
        hyps = _beam_search_numpy(lp, labels, beam, blank, None,
                                  lambda y: lm_weight * lm.log_probs(y)[labels] + insertion_bonus)
    elif native.kernels() is not None:
        hyps = native.ctc_beam_search(lp, beam, blank)
    else:
        hyps = _beam_search_numpy(lp, labels, beam, blank, None)
    return (rescored(lp, hyps, blank) if rescore else hyps)[: nbest or beam]


def rescored(log_probs, hyps, blank: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """``hyps`` (labellings, with any scores) re-scored by their exact ``ln Pr(labels|x)`` under
    ``log_probs (T, V)`` and sorted best first: one batched CTC forward pass in float64 (torch's
    ``F.ctc_loss``, whose forward computes the alpha recursion alone: twice as fast here as
    :func:`asrlib.ctc.ctc_loss`, which computes beta and the gradient with it)."""
    if not hyps:
        return []
    lp = torch.as_tensor(_as_numpy(log_probs))
    lengths = [len(y) for y, _ in hyps]
    targets = torch.zeros(len(hyps), max(max(lengths), 1), dtype=torch.long)
    for i, (y, _) in enumerate(hyps):
        targets[i, : len(y)] = torch.tensor(y, dtype=torch.long)
    log_p = -torch.nn.functional.ctc_loss(lp.unsqueeze(1).expand(-1, len(hyps), -1), targets, [len(lp)] * len(hyps),
                                          lengths, blank=blank, reduction="none")
    return sorted(((y, float(v)) for (y, _), v in zip(hyps, log_p.tolist())), key=lambda h: -h[1])


def _beam_search_numpy(lp: np.ndarray, labels: np.ndarray, beam: int, blank: int, nbest: int | None,
                       growth: Callable[[tuple[int, ...]], np.ndarray] | None = None):
    """:func:`beam_search` in numpy, a loop over the frames. ``growth(y)`` adds to the log score of
    growing sequence ``y`` by each of ``labels`` (the LM's weighted log probabilities)."""
    T = len(lp)
    column = {int(k): i for i, k in enumerate(labels)}
    hyps: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t in range(T):
        row = lp[t]
        keys = list(hyps)
        pb = np.array([hyps[y][0] for y in keys])
        pn = np.array([hyps[y][1] for y in keys])
        total = np.logaddexp(pb, pn)
        last = np.array([y[-1] if y else -1 for y in keys])
        ext = np.where(labels[None, :] == last[:, None], pb[:, None], total[:, None]) + row[labels][None, :]
        if growth is not None:
            ext += np.stack([growth(y) for y in keys])
        stay_label = np.where(last >= 0, pn + row[np.maximum(last, 0)], NEG_INF)
        new = {y: [total[i] + row[blank], stay_label[i]] for i, y in enumerate(keys)}
        index = {y: i for i, y in enumerate(keys)}
        for y in keys:  # extensions landing on a sequence already in the beam
            j = index.get(y[:-1]) if y else None
            if j is not None:
                c = column[y[-1]]
                new[y][1] = _logsumexp(new[y][1], ext[j, c])
                ext[j, c] = NEG_INF
        flat = ext.ravel()
        m = min(beam, int(np.isfinite(flat).sum()))
        if m:
            for f in np.argpartition(-flat, m - 1)[:m]:
                j, c = divmod(int(f), len(labels))
                new[keys[j] + (int(labels[c]),)] = [NEG_INF, flat[f]]
        scored = sorted(new.items(), key=lambda item: -np.logaddexp(*item[1]))[:beam]
        hyps = {y: (b, n) for y, (b, n) in scored}
    ranked = [(y, float(np.logaddexp(b, n))) for y, (b, n) in hyps.items()]
    return ranked[: nbest or beam]


def prefix_search(
    log_probs, blank: int = 0, max_expansions: int = 10_000, split_at: float | None = 0.999,
) -> list[tuple[tuple[int, ...], float]]:
    """CTC prefix search (Graves et al. 2006, section 3.2): ``[(labels, ln Pr(labels|x))]``.

    Expands the most probable prefix p* by every label at once (vectorised over labels), with
    the exact CTC forward variables of each extension ending in a label (``gn``) or a blank
    (``gb``); stops when the best complete labelling is at least as probable as any prefix left
    to expand, or after ``max_expansions`` (then the best labelling found so far).

    The search can take exponentially many expansions in the length of the utterance, so, as
    Graves et al. propose, the output is first cut into sections at the frames where the blank
    has probability above ``split_at``, and each section is searched alone; the labellings are
    joined, and the score is then the log probability of the alignments that keep those frames
    blank (a lower bound on ``ln Pr(labels|x)``). On a trained network's peaky output this
    turns minutes per utterance into milliseconds. ``split_at=None`` searches the utterance
    whole, exactly.
    """
    lp, labels = _prepare(log_probs, blank)
    if split_at is None:
        return [_prefix_search(lp, labels, blank, max_expansions)]
    if not 0 < split_at < 1:
        raise ValueError(f"split_at must lie strictly between 0 and 1 (or be None), got {split_at}")
    cut = lp[:, blank] > math.log(split_at)
    best, score, start = (), float(lp[cut, blank].sum()), 0
    for end in [*np.flatnonzero(cut), len(lp)]:
        if end > start:
            labelling, section_score = _prefix_search(lp[start:end], labels, blank, max_expansions)
            best, score = best + labelling, score + section_score
        start = end + 1
    return [(best, score)]


def _prefix_search(lp: np.ndarray, labels: np.ndarray, blank: int, max_expansions: int) -> tuple[tuple[int, ...], float]:
    """Prefix search over one whole section ``lp : (T, V)``; the best labelling and its score."""
    T = len(lp)
    # the empty prefix: only blanks
    gb = np.cumsum(lp[:, blank])                # ln gamma_t(empty, ends in blank)
    gn = np.full(T, NEG_INF)
    best, best_score = (), gb[-1]
    empty_prefix = np.log(max(-np.expm1(gb[-1]), 1e-300)) if T else NEG_INF  # 1 - Pr(only blanks)
    frontier = [(-empty_prefix, 0, ())]
    forward = {(): (gn, gb)}
    counter = 1
    for _ in range(max_expansions):
        if not frontier or -frontier[0][0] <= best_score:
            break
        _, _, p = heapq.heappop(frontier)
        pn, pb = forward.pop(p)
        # for all labels k at once: the forward variables of p + k
        new_n = np.full((T, len(labels)), NEG_INF)
        new_b = np.full((T, len(labels)), NEG_INF)
        repeat = (labels == p[-1]) if p else np.zeros(len(labels), bool)
        prefix_prob = np.full(len(labels), NEG_INF)
        for t in range(T):
            y = lp[t, labels]
            if t == 0:  # only the empty prefix can be followed by a label at the first frame
                new_label = np.full(len(labels), 0.0 if not p else NEG_INF)
                new_n[0] = new_label + y
            else:
                # a new label after p: p ended in a blank, or in another label
                new_label = np.where(repeat, pb[t - 1], np.logaddexp(pb[t - 1], pn[t - 1]))
                new_n[t] = np.logaddexp(new_n[t - 1], new_label) + y
                new_b[t] = np.logaddexp(new_b[t - 1], new_n[t - 1]) + lp[t, blank]
            prefix_prob = np.logaddexp(prefix_prob, new_label + y)
        complete = np.logaddexp(new_n[-1], new_b[-1])
        for i, k in enumerate(labels):
            y = p + (int(k),)
            if complete[i] > best_score:
                best, best_score = y, float(complete[i])
            if prefix_prob[i] > best_score:
                forward[y] = (new_n[:, i], new_b[:, i])
                heapq.heappush(frontier, (-float(prefix_prob[i]), counter, y))
                counter += 1
    return best, float(best_score)


DECODERS = {"greedy": greedy, "prefix": prefix_search, "beam": beam_search}


def decoder(method: str) -> Callable:
    """The decoder of :data:`DECODERS` called ``method``."""
    if method not in DECODERS:
        raise ValueError(f"unknown decoder {method!r}; expected one of {sorted(DECODERS)}")
    return DECODERS[method]


def decode_batch(log_probs: torch.Tensor, input_lengths, method: str = "beam", **kwargs) -> list[list[tuple[tuple[int, ...], float]]]:
    """Decode every utterance of ``log_probs : (T, B, V)`` within its length with one of
    :data:`DECODERS`; returns one hypothesis list per utterance."""
    decode = decoder(method)
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must have shape (T, B, V), got {tuple(log_probs.shape)}")
    lp = log_probs.detach().to("cpu", torch.float64).numpy()
    lengths = torch.as_tensor(input_lengths).tolist()
    return [decode(lp[:n, b], **kwargs) for b, n in enumerate(lengths)]
