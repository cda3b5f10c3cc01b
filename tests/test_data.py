"""Dataset and collate: padding-safe batches."""

import numpy as np
import pytest
import torch

from asrlib.augment import Augment
from asrlib.data import IGNORE_INDEX, AugmentedDataset, Batch, Item, SpeechDataset, collate, loader


def test_collate_pads_and_keeps_lengths():
    items = [
        Item(torch.ones(5, 3), torch.tensor([4, 5]), torch.tensor([1, 1, 2, 2, 2])),
        Item(2 * torch.ones(3, 3), torch.tensor([6, 7, 8]), torch.tensor([3, 3, 3])),
    ]
    b = collate(items)
    assert isinstance(b, Batch)
    assert b.x.shape == (2, 5, 3) and b.y.shape == (2, 3) and b.frame_y.shape == (2, 5)
    assert b.x_lens.tolist() == [5, 3] and b.y_lens.tolist() == [2, 3]
    assert b.x[1, 3:].abs().sum() == 0 and b.y[0, 2] == 0
    assert b.frame_y[1].tolist() == [3, 3, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert b.x_lens.dtype == b.y_lens.dtype == torch.long


def test_collate_names_a_malformed_item():
    with pytest.raises(ValueError, match=r"item 1: expected x \(T, F\)"):
        collate([Item(torch.ones(2, 3), torch.ones(1), torch.ones(2)), Item(torch.ones(3), torch.ones(1), torch.ones(3))])
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_dataset_batches_match_single_utterances(ci_corpus):
    ds = SpeechDataset(ci_corpus, "dev")
    assert len(ds) == 80
    batch = next(iter(loader(ds, batch_size=4, shuffle=False)))
    for k in range(4):
        item = ds[k]
        T, U = len(item.x), len(item.y)
        assert batch.x_lens[k] == T and batch.y_lens[k] == U
        torch.testing.assert_close(batch.x[k, :T], item.x)
        torch.testing.assert_close(batch.y[k, :U], item.y)
        torch.testing.assert_close(batch.frame_y[k, :T], item.frame_y)
    assert batch.x.shape[-1] == 123 and batch.y.min() >= 0 and batch.y.max() < ci_corpus.phones.num_classes
    moved = batch.to("cpu")
    assert isinstance(moved, Batch)


@pytest.mark.parametrize("bucket", [True, False])
def test_shuffling_is_reproducible_and_shuffles(ci_corpus, bucket):
    ds = SpeechDataset(ci_corpus, "dev", preload=False)

    def order(**kwargs):
        return [b.x_lens.tolist() for b in loader(ds, batch_size=8, bucket=bucket, **kwargs)]

    assert order(seed=3) == order(seed=3)
    assert order(seed=3) != order(seed=4)                  # the seed changes the order
    assert order(seed=3) != order(shuffle=False)           # and it is not the split's order


def test_unknown_split_is_an_error(ci_corpus):
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        SpeechDataset(ci_corpus, "validation")


def test_length_buckets_cover_every_utterance_once_with_little_padding():
    from asrlib.data import LengthBucketSampler

    lengths = np.random.default_rng(0).integers(100, 500, size=1000)
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=1, pool=20)
    epoch0, epoch1 = list(sampler), list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000))
    assert epoch0 != epoch1  # a new order every epoch
    sampler.set_epoch(0)
    assert list(sampler) == epoch0  # ... and the same order when an epoch is replayed (resume)

    def padding(batches):
        padded = sum(len(b) * lengths[b].max() for b in batches)
        return 1 - lengths.sum() / padded

    random = [np.arange(1000)[i : i + 16] for i in range(0, 1000, 16)]
    assert padding([np.array(b) for b in epoch0]) < 0.05 < 0.2 < padding(random)


def test_length_buckets_shard_across_replicas_evenly():
    from asrlib.data import LengthBucketSampler

    lengths = np.arange(100)
    shards = [list(LengthBucketSampler(lengths, 8, seed=2, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen)) >= 100 - 3 * 8
    with pytest.raises(ValueError, match="rank"):
        LengthBucketSampler(lengths, 8, num_replicas=2, rank=2)


# --------------------------------------------------------------------------- robustness (chapter 11)


def test_per_utterance_normalisation_gives_each_utterance_zero_mean_unit_variance(ci_corpus):
    plain = SpeechDataset(ci_corpus, "dev").head(3)
    own = plain.normalised("utterance")
    for a, b in zip(plain, own):
        assert torch.equal(a.y, b.y) and not torch.allclose(a.x, b.x)
        torch.testing.assert_close(b.x.mean(0), torch.zeros(123), atol=1e-4, rtol=0)
        torch.testing.assert_close(b.x.std(0, unbiased=False), torch.ones(123), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="unknown normalise 'global'"):
        plain.normalised("global")


def test_augmented_items_are_fresh_per_epoch_deterministic_and_the_identity_when_off(ci_corpus):
    plain = SpeechDataset(ci_corpus, "dev").head(3)
    identity = AugmentedDataset(plain, Augment())
    for a, b in zip(plain, identity):  # features recomputed from the audio equal the stored ones
        torch.testing.assert_close(a.x, b.x, atol=1e-4, rtol=0)
        assert torch.equal(a.y, b.y) and torch.equal(a.frame_y, b.frame_y)
    augment = Augment(speed=0.1, noise_snr=(10.0, 30.0), freq_masks=1, max_freq=8)
    first, again = AugmentedDataset(plain, augment, seed=3), AugmentedDataset(plain, augment, seed=3)
    again.set_epoch(0)
    item = first[1]
    assert torch.equal(item.x, again[1].x)                       # (seed, epoch, index) fixes the item
    again.set_epoch(1)
    assert not torch.equal(item.x, again[1].x) or item.x.shape != again[1].x.shape  # a new epoch, a new version
    assert len(item.frame_y) == len(item.x) and torch.equal(item.y, plain[1].y)
    assert (item.frame_y != IGNORE_INDEX).float().mean() > 0.95  # the phone boundaries moved with the speed


def test_training_with_augmentation_resumes_to_the_same_weights(ci_corpus, tmp_path, monkeypatch):
    from asrlib.models import build_model
    from asrlib.objectives import CTCObjective
    from asrlib.train import TrainConfig, train

    train_set, dev_set = SpeechDataset(ci_corpus, "train").head(8), SpeechDataset(ci_corpus, "dev").head(4)

    def run(epochs, checkpoint=None):
        torch.manual_seed(0)
        model = build_model("CTC-1l-8h-nopeep", num_classes=ci_corpus.phones.num_classes, init="torch")
        config = TrainConfig(epochs=epochs, batch_size=4, optimizer="adam", lr=1e-2, progress=False,
                             normalise="utterance", augment=Augment(speed=0.1, noise_snr=(10.0, 30.0)))
        history = train(model, CTCObjective(ci_corpus.phones), train_set, dev_set, config, device="cpu",
                        checkpoint=checkpoint)
        return model, history

    epochs_seen = []
    set_epoch = AugmentedDataset.set_epoch
    monkeypatch.setattr(AugmentedDataset, "set_epoch", lambda self, e: (epochs_seen.append(e), set_epoch(self, e)))
    straight, history = run(2)
    assert epochs_seen == [0, 1]  # each epoch draws new versions of the utterances
    run(1, tmp_path / "run.pt")
    resumed, resumed_history = run(2, tmp_path / "run.pt")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert resumed_history["step_loss"] == history["step_loss"]


def test_train_config_validates_robustness_settings():
    from asrlib.train import TrainConfig

    config = TrainConfig(augment=Augment(speed=0.1))
    assert config.augment["speed"] == 0.1 and isinstance(config.augment, dict)
    with pytest.raises(ValueError, match="unknown normalise"):
        TrainConfig(normalise="global")
    with pytest.raises(ValueError, match="unknown Augment field"):
        TrainConfig(augment={"speeed": 0.1})
