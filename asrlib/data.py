"""Batches for training: a Dataset over a corpus split, and a collate that pads.

A batch is ``(x, x_lens, y, y_lens, frame_y)``:

* ``x : FloatTensor, shape (B, T, 123)``, zero-padded after each utterance's last frame;
* ``x_lens : LongTensor, shape (B,)``, the true number of frames;
* ``y : LongTensor, shape (B, U)``, phone indices 1..K, padded with 0 (the blank; CTC ignores
  everything past ``y_lens``);
* ``y_lens : LongTensor, shape (B,)``;
* ``frame_y : LongTensor, shape (B, T)``, the phone of every frame from the segmentation (for
  framewise training), padded with :data:`asrlib.features.IGNORE_INDEX` (-100),
  ``cross_entropy``'s ``ignore_index``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from asrlib.augment import Augment, normalise_utterance
from asrlib.corpus import Corpus
from asrlib.features import IGNORE_INDEX, frame_labels


class Batch(NamedTuple):
    x: torch.Tensor
    x_lens: torch.Tensor
    y: torch.Tensor
    y_lens: torch.Tensor
    frame_y: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on ``device`` (lengths too: CTC on CUDA wants them there)."""
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))

    def references(self) -> list[list[int]]:
        """Each utterance's phones, without the padding."""
        return [y[:n].tolist() for y, n in zip(self.y.cpu(), self.y_lens.tolist())]

    def select(self, i: int) -> Batch:
        """Utterance ``i`` alone, as a batch of one without padding."""
        T, U = int(self.x_lens[i]), int(self.y_lens[i])
        return Batch(
            self.x[i : i + 1, :T], self.x_lens[i : i + 1], self.y[i : i + 1, :U], self.y_lens[i : i + 1],
            self.frame_y[i : i + 1, :T],
        )


class Item(NamedTuple):
    x: torch.Tensor        # (T, 123)
    y: torch.Tensor        # (U,)
    frame_y: torch.Tensor  # (T,)


NORMALISE = ("train", "utterance")
LABELS = ("voice", "dictionary")


def targets_of(u, corpus: Corpus, labels: str = "voice") -> np.ndarray:
    """The targets of utterance ``u`` (a :class:`asrlib.corpus.Utterance` of ``corpus``): the voice's
    phones, or (``labels="dictionary"``) its sentence as the pronouncing dictionary writes it."""
    if labels == "voice":
        return u.targets
    from asrlib.realspeech import dictionary_labels

    return np.asarray(corpus.phones.encode(dictionary_labels(u.text, u.phones, corpus.phones), where=u.id), np.int64)


class SpeechDataset(Dataset):
    """The utterances of one split, as tensors.

    Parameters
    ----------
    corpus : Corpus
    split : str
        ``"train"``, ``"dev"`` or ``"test"``.
    preload : bool
        Load every utterance into memory once (fast epochs; the CI-size training split takes
        about 70 MB). Otherwise each item is read from the cache when asked for.
    normalise : str
        ``"train"``: the features as stored, normalised with the training split's statistics (the
        paper); ``"utterance"``: each utterance then normalised by its own mean and variance
        (:func:`asrlib.augment.normalise_utterance`, the same as normalising the raw features).
    labels : str
        ``"voice"``: the targets are the phones the synthesiser says it spoke; ``"dictionary"``:
        the same sentences as the CMU pronouncing dictionary writes them, the convention of the
        human clips' references (:func:`asrlib.realspeech.dictionary_labels`; the frame labels
        stay the voice's).
    """

    def __init__(self, corpus: Corpus, split: str, preload: bool = True, normalise: str = "train",
                 labels: str = "voice"):
        if normalise not in NORMALISE:
            raise ValueError(f"unknown normalise {normalise!r}; expected one of {NORMALISE}")
        if labels not in LABELS:
            raise ValueError(f"unknown labels {labels!r}; expected one of {LABELS}")
        self.corpus = corpus
        self.split = split
        self.normalise = normalise
        self.labels = labels
        self.ids = corpus.ids(split)
        if not self.ids:
            raise ValueError(f"split {split!r} of {corpus!r} is empty")
        self._items = [self._read(i) for i in self.ids] if preload else None

    def _read(self, utt_id: str) -> Item:
        u = self.corpus.load(utt_id)
        x = normalise_utterance(u.features) if self.normalise == "utterance" else u.features
        return Item(torch.from_numpy(x), torch.from_numpy(targets_of(u, self.corpus, self.labels)),
                    torch.from_numpy(u.frame_targets))

    def normalised(self, normalise: str) -> SpeechDataset:
        """The same utterances with another normalisation (``"train"`` or ``"utterance"``)."""
        if normalise == self.normalise:
            return self
        if normalise not in NORMALISE:
            raise ValueError(f"unknown normalise {normalise!r}; expected one of {NORMALISE}")
        other = copy.copy(self)
        other.normalise = normalise
        other._items = [other._read(i) for i in self.ids] if self._items is not None else None
        return other

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> SpeechDataset:
        """The first ``n`` utterances of the split (a training set small enough to overfit)."""
        if not 1 <= n <= len(self.ids):
            raise ValueError(f"n must lie in 1..{len(self.ids)}, got {n}")
        part = copy.copy(self)
        part.ids = self.ids[:n]
        part._items = self._items[:n] if self._items is not None else None
        return part

    def __getitem__(self, i: int) -> Item:
        return self._items[i] if self._items is not None else self._read(self.ids[i])

    @property
    def num_frames(self) -> np.ndarray:
        """Frames of every utterance, in order (for length-sorted batching)."""
        info = {u["id"]: u["num_frames"] for u in self.corpus.utterances}
        return np.array([info[i] for i in self.ids])


class AugmentedDataset(Dataset):
    """A training split whose every item is a fresh perturbation of its utterance
    (:class:`asrlib.augment.Augment`): the waveform is changed (speed, pitch, room, band,
    equaliser, noise), the 123 features computed again (with the VTLP warp), normalised like
    ``dataset`` and masked (SpecAugment). Item ``i`` of epoch ``e`` depends only on
    ``(seed, e, i)``, so a resumed run sees the same items as an uninterrupted one;
    :func:`asrlib.train.train` calls :meth:`set_epoch`. Speed perturbation moves the phone
    boundaries, and the frame labels follow them.

    The audio of the whole split is kept in memory (the CI-size training split: about 90 MB).
    """

    def __init__(self, dataset: SpeechDataset, augment: Augment, seed: int = 0):
        self.corpus, self.split, self.ids, self.normalise = dataset.corpus, dataset.split, dataset.ids, dataset.normalise
        self.augment, self.seed, self.epoch, self.labels = augment, seed, 0, dataset.labels
        self._utterances = [self.corpus.load(i) for i in self.ids]
        self._targets = [torch.from_numpy(targets_of(u, self.corpus, self.labels)) for u in self._utterances]
        self._frames = dataset.num_frames

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_frames(self) -> np.ndarray:
        """Frames of the unperturbed utterances (for batching by length)."""
        return self._frames

    def __getitem__(self, i: int) -> Item:
        u = self._utterances[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        raw, starts, ends = self.augment.apply(u.audio, u.starts, u.ends, rng)
        x = self.corpus.normaliser(raw)
        if self.normalise == "utterance":
            x = normalise_utterance(x)
        x = self.augment.apply_features(x, rng)
        frame_y = frame_labels(starts, ends, u.targets, len(x))
        return Item(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), self._targets[i],
                    torch.from_numpy(frame_y))


def collate(items: list[Item]) -> Batch:
    """Pad a list of items into a :class:`Batch`."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    for k, item in enumerate(items):
        if item.x.ndim != 2 or item.y.ndim != 1 or item.frame_y.shape != item.x.shape[:1]:
            raise ValueError(
                f"item {k}: expected x (T, F), y (U,), frame_y (T,); got {tuple(item.x.shape)}, "
                f"{tuple(item.y.shape)}, {tuple(item.frame_y.shape)}"
            )
    x_lens = torch.tensor([len(it.x) for it in items], dtype=torch.long)
    y_lens = torch.tensor([len(it.y) for it in items], dtype=torch.long)
    x = torch.nn.utils.rnn.pad_sequence([it.x for it in items], batch_first=True)
    y = torch.nn.utils.rnn.pad_sequence([it.y for it in items], batch_first=True, padding_value=0)
    frame_y = torch.nn.utils.rnn.pad_sequence([it.frame_y for it in items], batch_first=True, padding_value=IGNORE_INDEX)
    return Batch(x, x_lens, y, y_lens, frame_y)


class LengthBucketSampler(Sampler[list[int]]):
    """Shuffled batches of utterances of similar length: the same data, far less padding.

    Every epoch the utterances are shuffled, cut into pools of ``pool`` batches, each pool is
    sorted by length and cut into batches, and the batches are shuffled. A random batch of 16
    pads to its longest utterance, about 45% padding on this corpus; bucketed, about 5%.

    With ``num_replicas > 1`` (one process per GPU under DistributedDataParallel) process
    ``rank`` takes every ``num_replicas``-th batch, and all processes get the same number of
    batches (a few utterances are dropped per epoch, different ones every epoch).

    The order depends only on ``seed`` and the epoch: the epoch advances at every iteration,
    and :meth:`set_epoch` sets it (to resume a run where it stopped).
    """

    def __init__(
        self, lengths, batch_size: int, seed: int = 0, pool: int = 50, num_replicas: int = 1, rank: int = 0,
    ):
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be positive, got {batch_size}, {pool}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in 0..{num_replicas - 1}, got {rank}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.pool = batch_size, seed, pool
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of ``epoch`` (what iterating yields in that epoch)."""
        return [b.tolist() for b in self._batches(epoch)]

    def _batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self):
        batches = self.epoch_batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches(self.epoch))


def loader(
    dataset: SpeechDataset, batch_size: int = 16, shuffle: bool = True, seed: int = 0, bucket: bool = True, **kwargs,
) -> DataLoader:
    """A DataLoader with :func:`collate` and pinned memory on CUDA.

    ``shuffle=True`` gives reproducible shuffled batches, bucketed by length
    (:class:`LengthBucketSampler`) unless ``bucket=False``; ``shuffle=False`` keeps the split's
    order (for evaluation, where outputs must line up with utterance ids).
    """
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    if shuffle and bucket:
        sampler = LengthBucketSampler(dataset.num_frames, batch_size, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator, **kwargs)
