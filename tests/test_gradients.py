"""Gradient-versus-lag measurements and the recall task."""

import pytest
import torch

from asrlib.cells import GRUCell, LSTMCell, RNNCell
from asrlib.gradients import gradient_vs_lag, scale_spectral_radius, tanh_rnn_jacobians
from asrlib.tasks import CUE_CLASSES, RecallModel, recall_task, train_recall


def test_autograd_norms_equal_the_jacobian_product_of_the_tanh_rnn():
    torch.manual_seed(0)
    cell = RNNCell(6, 8).double()
    scale_spectral_radius(cell.weight_hh, 1.3)
    x = torch.randn(25, 6, dtype=torch.float64)
    with torch.no_grad():
        hs, h = [], None
        for x_t in x:
            h = cell(x_t[None], h)
            hs.append(h[0])
    torch.testing.assert_close(gradient_vs_lag(cell, x), tanh_rnn_jacobians(cell.weight_hh, torch.stack(hs)))


def test_spectral_radius_is_set_and_small_radius_vanishes():
    torch.manual_seed(1)
    cell = RNNCell(4, 16).double()
    scale_spectral_radius(cell.weight_hh, 0.5)
    assert torch.linalg.eigvals(cell.weight_hh).abs().max().item() == pytest.approx(0.5)
    g = gradient_vs_lag(cell, torch.randn(40, 4, dtype=torch.float64))
    assert g[-1] == pytest.approx(1.0) and g[0] < 1e-8  # bound: 0.5^39 times ||W|| terms


def test_lstm_with_open_forget_gates_keeps_its_gradient():
    """The constant error carousel: with f_t near 1 the cell state carries gradient unchanged."""
    torch.manual_seed(2)
    x = torch.randn(60, 4, dtype=torch.float64)
    cell = LSTMCell(4, 8).double()
    closed = gradient_vs_lag(cell, x)[0]
    with torch.no_grad():
        cell.bias_hh[8:16] += 20.0  # f = sigmoid(20 + ...) ~ 1
    opened = gradient_vs_lag(cell, x)[0]
    assert opened > 1e4 * closed


def test_input_gradients_and_bad_arguments():
    cell = GRUCell(4, 8)
    assert gradient_vs_lag(cell, torch.randn(10, 4), wrt="input").shape == (10,)
    with pytest.raises(ValueError, match=r"x must have shape \(T, 4\), got \(10, 5\)"):
        gradient_vs_lag(cell, torch.randn(10, 5))
    with pytest.raises(ValueError, match="wrt must be"):
        gradient_vs_lag(cell, torch.randn(10, 4), wrt="weights")


def test_recall_task_shapes_labels_and_learnability(ci_corpus):
    x, y = recall_task(ci_corpus, lag=3, n=600, seed=0)
    assert x.shape == (600, 8, 123) and y.min() >= 0 and y.max() == len(CUE_CLASSES) - 1
    again = recall_task(ci_corpus, lag=3, n=600, seed=0)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    test = recall_task(ci_corpus, lag=3, n=200, split="test", seed=1)
    result = train_recall(RecallModel("gru", hidden=16), (x, y), test, steps=150, eval_every=50)
    assert result["accuracy"] > 0.8  # a short lag is easy: the task is learnable
    assert len(result["curve"]["step"]) == 3
    with pytest.raises(ValueError, match="lag must be >= 0"):
        recall_task(ci_corpus, lag=-1, n=3)


def test_framewise_classifier_learns_and_scores_folded_frames(ci_corpus):
    from asrlib.data import SpeechDataset, loader
    from asrlib.framewise import frame_accuracy, train_framewise
    from asrlib.models import AcousticModel

    torch.manual_seed(0)
    train = SpeechDataset(ci_corpus, "dev")  # small and fast
    test_set = SpeechDataset(ci_corpus, "test")
    test = loader(test_set, batch_size=32, shuffle=False)
    fold = ci_corpus.phones.fold_table()
    model = AcousticModel("lstm", 123, 32, 1, ci_corpus.phones.num_classes, bidirectional=False, peephole=False)
    before = frame_accuracy(model, test, fold)
    history = train_framewise(model, train, test_set, fold, epochs=3, progress=False)
    assert history["dev_accuracy"][-1] > before + 0.15
    assert len(fold) == ci_corpus.phones.num_classes and fold[0] == -1
