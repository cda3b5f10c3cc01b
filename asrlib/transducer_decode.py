"""Decoding the transducer: greedy decoding, and the beam search of Graves (2012), Algorithm 1.

The paper decodes its transducers with this beam search (width 100, the n-best list sorted by
``Pr(y)`` without length normalisation; Graves 2012 normalised by length). For CTC it reads the
transducer's ``Pr(k|t,u)`` as CTC's ``Pr(k|t)``; taken literally (:func:`transducer_beam_search`
without a network) that fails on a trained CTC network, which is why
:func:`asrlib.ctc_decode.beam_search` keeps CTC's own alignment rules.

* :func:`greedy`: at every frame, emit the most probable label until the blank is the most
  probable output (at most ``max_symbols`` labels a frame), for a whole padded batch at once.
* :func:`beam_search`: Algorithm 1 on a trained :class:`asrlib.transducer.Transducer`, through
  a :class:`NetworkScorer` that runs the transcription network once, caches the prediction
  network's state per prefix (a new hypothesis costs one LSTM step from its parent's state)
  and evaluates the joint network for all hypotheses of a frame in one batched call.

Both are guaranteed to finish: no hypothesis gains more than ``max_symbols`` labels at one frame,
and the search takes at most ``max_pops`` hypotheses out of its queue per frame, whatever the
network (even one whose blank has probability 0). Hypotheses are tuples of labels; scores are
natural logs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from asrlib.ctc_decode import NEG_INF, NEGLIGIBLE, _logsumexp, _prepare

MAX_SYMBOLS = 5   # labels one hypothesis may emit at one frame (phones last 3 frames or more)
LOOKAHEAD = 32    # hypotheses evaluated together when one is needed: it and those next in the queue


def search(
    T: int, V: int, prob_fn: Callable[[int, tuple[int, ...]], np.ndarray], beam: int = 100, blank: int = 0,
    nbest: int | None = None, length_norm: bool = False, max_symbols: int = MAX_SYMBOLS,
    max_pops: int | None = None, prefetch: Callable[[int, list], None] | None = None,
) -> list[tuple[tuple[int, ...], float]]:
    """Algorithm 1 of Graves (2012) over ``T`` frames, with ``prob_fn(t, y) -> ln Pr(k | t, y)``
    over the V outputs; see :func:`transducer_beam_search`. ``prefetch(t, hypotheses)``, when
    given, is called at the start of every frame with the beam, and, when ``prob_fn.known(t, y)``
    says a hypothesis taken from the queue has no distribution yet, with it and the extensions
    next in line (``LOOKAHEAD``), to batch the network's work: a trained network's peaked
    outputs make the search take many extensions a frame, from many parents. Evaluating ahead
    only fills a cache, so the result is Algorithm 1's exactly.
    Returns ``[(labels, ln Pr(labels))]``, best first: by ``ln Pr``, or with ``length_norm`` by
    ``ln Pr / length`` (Graves 2012)."""
    if beam < 1 or max_symbols < 1:
        raise ValueError(f"beam and max_symbols must be at least 1, got {beam}, {max_symbols}")
    labels = np.array([k for k in range(V) if k != blank])
    max_pops = max_pops if max_pops is not None else 20 * beam + 100
    known = getattr(prob_fn, "known", lambda t, y: True)
    hyps: dict[tuple[int, ...], float] = {(): 0.0}
    for t in range(T):
        if prefetch is not None:
            prefetch(t, list(hyps))
        # A = B, with the prefix sums: Pr(y) += Pr(y') Pr(y|y', t) for every proper prefix y' in B
        # (with the prefixes' scores from frame t - 1: a path through an intermediate prefix is
        # already in the product Pr(y|y', t))
        A = dict(hyps)
        reach = {y: range(len(y) - 1, max(len(y) - 1 - max_symbols, -1), -1) for y in hyps}
        reach = {y: js for y, js in reach.items() if any(y[:j] in hyps for j in js)}   # a prefix in the beam
        if prefetch is not None:
            prefetch(t, [y[:j] for y, js in reach.items() for j in js])
        for y, js in reach.items():
            score = hyps[y]
            extension = 0.0
            for j in js:
                extension += prob_fn(t, y[:j])[y[j]]
                if extension < score - NEGLIGIBLE:
                    break
                prefix = hyps.get(y[:j])
                if prefix is not None:
                    score = _logsumexp(score, prefix + extension)
            A[y] = score
        original = set(hyps)
        # A as a max-heap of entries (-score, id, y, rank, order, depth); rank -1 is y itself,
        # rank r >= 0 the r-th most probable extension of a parent, generated when its
        # predecessor leaves the heap; depth counts the labels added at this frame
        heap = [(-s, i, y, -1, None, 0) for i, (y, s) in enumerate(A.items())]
        heapq.heapify(heap)
        counter, pops = len(heap), 0
        new: dict[tuple[int, ...], float] = {}
        best_new: list[float] = []  # min-heap of the W best scores in the new B
        while heap and pops < max_pops:
            if len(best_new) >= beam and best_new[0] >= -heap[0][0]:
                break
            neg, _, y, rank, order, depth = heapq.heappop(heap)
            pops += 1
            score = -neg
            if rank >= 0:  # a lazy extension: build it, queue the next-best extension of its parent
                parent, dist = y
                k = int(order[rank])
                y = parent + (k,)
                if rank + 1 < len(order):
                    heapq.heappush(heap, (-(score - dist[k] + dist[order[rank + 1]]), counter, (parent, dist),
                                          rank + 1, order, depth))
                    counter += 1
                if y in original:  # counted by the prefix sums
                    continue
            if prefetch is not None and not known(t, y):   # y and the next extensions in line, in one call
                ahead = [e[2][0] + (int(e[4][e[3]]),) for e in heapq.nsmallest(LOOKAHEAD, heap) if e[3] >= 0]
                prefetch(t, [y, *ahead])
            dist = prob_fn(t, y)
            blank_score = score + dist[blank]
            new[y] = _logsumexp(new.get(y, NEG_INF), blank_score)
            heapq.heappush(best_new, blank_score)
            if len(best_new) > beam:
                heapq.heappop(best_new)
            if depth < max_symbols:
                order = labels[np.argsort(-dist[labels], kind="stable")]
                heapq.heappush(heap, (-(score + dist[order[0]]), counter, (y, dist), 0, order, depth + 1))
                counter += 1
        hyps = dict(heapq.nlargest(beam, new.items(), key=lambda item: item[1]))
    key = (lambda item: -item[1] / max(len(item[0]), 1)) if length_norm else (lambda item: -item[1])
    return sorted(hyps.items(), key=key)[: nbest or beam]


def transducer_beam_search(
    log_probs, beam: int = 100, blank: int = 0, nbest: int | None = None,
    prob_fn: Callable[[int, tuple[int, ...]], np.ndarray] | None = None, **kwargs,
) -> list[tuple[tuple[int, ...], float]]:
    """The transducer beam search of Graves (2012), Algorithm 1, on per-frame outputs.

    With ``prob_fn`` it decodes any transducer. Without it, ``Pr(k|t,u) = Pr(k|t)`` read
    literally: a label does not consume a frame. On a trained CTC network that reading
    fails: at a spike frame the blank (the only way on to the next frame) has probability
    ~e^-8, so it emits the spike's label again and again, up to ``max_symbols`` times.
    :func:`asrlib.ctc_decode.beam_search` is the reading that works.

    Parameters
    ----------
    log_probs : array or Tensor, shape (T, V)
        ``ln Pr(k|t)``; only its shape is used when ``prob_fn`` is given.
    beam : int
        W, the hypotheses kept after every frame (the paper: 100).
    nbest : int, optional
        How many hypotheses to return (default: all W).
    prob_fn : callable, optional
        ``prob_fn(t, y) -> ln Pr(k | t, y)`` over V. Default: ``log_probs[t]``, the CTC case.
    **kwargs
        ``length_norm``, ``max_symbols``, ``max_pops``, ``prefetch`` (see :func:`search`).

    Per frame t, with B the hypotheses after frame t - 1: each hypothesis first collects the
    probability of reaching it from its prefixes in B by emitting labels at frame t; then the
    most probable hypothesis of A is repeatedly taken out, moved to the new B with a blank
    (``* Pr(blank|t)``) and extended by every label k (``* Pr(k|t)``) back into A, until B holds
    W hypotheses more probable than any left in A. Extensions are generated lazily, in order
    of ``Pr(k|t)``, so only those that can still enter the beam are ever built; an extension
    that is already in B was counted by the prefix sums and is not added twice.
    """
    lp, _ = _prepare(log_probs, blank, beam)
    get = prob_fn if prob_fn is not None else (lambda t, y: lp[t])
    return search(len(lp), lp.shape[1], get, beam, blank, nbest, **kwargs)


class NetworkScorer:
    """``ln Pr(k | t, y)`` of a trained :class:`asrlib.transducer.Transducer` on one utterance.

    The transcription network runs once (``l_t`` for every frame). The prediction network's
    output and state are cached per prefix, so hypothesis y + (k,) costs one LSTM step from y's
    state; distributions are cached per (frame, prefix). :meth:`prefetch` computes the
    distributions of many prefixes at one frame with one batched LSTM step and one batched
    joint call. ``batched=False`` evaluates one hypothesis at a time (for the benchmark).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, batched: bool = True):
        self.model, self.batched = model, batched
        self.cell = model.prediction.rnn.cell
        self.K = model.prediction.num_phones
        with torch.no_grad():
            l = model.encode(x[None], torch.tensor([len(x)], device=x.device))[0]       # noqa: E741 (T, H)
            self.l = model.project_l(l)                                                 # once per frame
            zero = x.new_zeros(1, self.K)
            h, c = self.cell(zero, self.cell.init_state(1, zero))                       # p_0: no phone yet
            pp = model.project_p(h)
        # per prefix: the prediction network's state (h, c) and its projection for the joint
        self.states: dict[tuple[int, ...], tuple[torch.Tensor, ...]] = {(): (h[0], c[0], pp[0])}
        self.dists: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self.joint_calls = self.lstm_calls = 0

    def __len__(self) -> int:
        return len(self.l)

    @torch.no_grad()
    def _states(self, prefixes: list[tuple[int, ...]]) -> None:
        todo = [y for y in dict.fromkeys(prefixes) if y not in self.states]
        missing = [y[:-1] for y in todo if y[:-1] not in self.states]
        if missing:
            self._states(missing)
        if not todo:
            return
        h = torch.stack([self.states[y[:-1]][0] for y in todo])
        c = torch.stack([self.states[y[:-1]][1] for y in todo])
        phones = nn.functional.one_hot(torch.tensor([y[-1] - 1 for y in todo], device=h.device), self.K).to(h.dtype)
        h, c = self.cell(phones, (h, c))
        pp = self.model.project_p(h)
        self.lstm_calls += 1
        for i, y in enumerate(todo):
            self.states[y] = (h[i], c[i], pp[i])

    @torch.no_grad()
    def prefetch(self, t: int, prefixes: list[tuple[int, ...]]) -> None:
        todo = [y for y in dict.fromkeys(prefixes) if (t, y) not in self.dists]
        if not self.batched and len(todo) > 1:
            for y in todo:
                self.prefetch(t, [y])
            return
        if not todo:
            return
        self._states(todo)
        pp = torch.stack([self.states[y][2] for y in todo])
        lp = self.model.combine(self.l[t], pp).log_softmax(-1).double().cpu().numpy()
        self.joint_calls += 1
        for i, y in enumerate(todo):
            self.dists[t, y] = lp[i]

    def known(self, t: int, y: tuple[int, ...]) -> bool:
        return (t, y) in self.dists

    def __call__(self, t: int, y: tuple[int, ...]) -> np.ndarray:
        if (t, y) not in self.dists:
            self.prefetch(t, [y])
        return self.dists[t, y]


def beam_search(
    model: nn.Module, x: torch.Tensor, beam: int = 100, blank: int = 0, nbest: int | None = None,
    batched: bool = True, **kwargs,
) -> list[tuple[tuple[int, ...], float]]:
    """Graves (2012) Algorithm 1 on a trained transducer and one utterance ``x : (T, F)``:
    ``[(labels, ln Pr(labels|x))]``, most probable first (``length_norm=True``: by
    ``ln Pr / length``, as in 2012; the paper does not normalise). Other keyword arguments as
    :func:`search`."""
    if x.ndim != 2:
        raise ValueError(f"x must be one utterance of shape (T, F), got {tuple(x.shape)}")
    scorer = NetworkScorer(model, x, batched=batched)
    return search(len(scorer), model.num_classes, scorer, beam, blank, nbest, prefetch=scorer.prefetch, **kwargs)


@torch.no_grad()
def greedy(
    model: nn.Module, x: torch.Tensor, x_lens: torch.Tensor | None = None, blank: int = 0,
    max_symbols: int = MAX_SYMBOLS,
) -> list[tuple[tuple[int, ...], float]]:
    """Greedy decoding of a padded batch ``x : (B, T, F)``: at each frame, emit the most probable
    label and stay, until the blank is the most probable output or ``max_symbols`` labels have
    left the frame (then the blank is taken). Returns one ``(labels, ln Pr(path))`` per utterance."""
    if x.ndim != 3:
        raise ValueError(f"x must be a batch of shape (B, T, F), got {tuple(x.shape)}")
    B, T, _ = x.shape
    x_lens = torch.full((B,), T, device=x.device) if x_lens is None else x_lens.to(x.device)
    lp_all = model.project_l(model.encode(x, x_lens))                               # once per frame
    cell, K = model.prediction.rnn.cell, model.prediction.num_phones
    zero = x.new_zeros(B, K)
    h, c = cell(zero, cell.init_state(B, zero))
    pp = model.project_p(h)
    hyps, scores, rows = [[] for _ in range(B)], torch.zeros(B, dtype=torch.float64, device=x.device), torch.arange(B)
    for t in range(T):
        active = t < x_lens
        for n in range(max_symbols + 1):
            lp = model.combine(lp_all[:, t], pp).log_softmax(-1).double()
            k = lp.argmax(-1) if n < max_symbols else torch.full_like(x_lens, blank)
            scores += torch.where(active, lp[rows, k], 0.0)
            emit = active & (k != blank)
            if not emit.any():
                break
            for b in emit.nonzero().flatten().tolist():
                hyps[b].append(int(k[b]))
            phones = nn.functional.one_hot((k - 1).clamp(min=0), K).to(h.dtype)
            h2, c2 = cell(phones, (h, c))
            h, c = torch.where(emit[:, None], h2, h), torch.where(emit[:, None], c2, c)
            pp = torch.where(emit[:, None], model.project_p(h2), pp)
            active = emit
    return [(tuple(y), float(s)) for y, s in zip(hyps, scores.tolist())]
