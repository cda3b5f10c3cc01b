"""Pretraining: the phone LM's loss is the next-phone cross-entropy, pretrained weights land in
the transducer, shapes that do not match are named, and the command line trains a transducer and
a pretrained transducer end to end."""

import json
import math

import pytest
import torch

from asrlib.checkpoint import load_weights
from asrlib.data import Batch
from asrlib.models import build_model
from asrlib.pretrain import PhoneLM, PhoneLMObjective, pretrained_transducer, sample


def test_phone_lm_loss_is_the_next_phone_cross_entropy():
    torch.manual_seed(0)
    lm = PhoneLM(5, 6)
    y, y_lens = torch.tensor([[3, 1, 4], [2, 5, 0]]), torch.tensor([3, 2])
    batch = Batch(torch.zeros(2, 1, 1), torch.tensor([1, 1]), y, y_lens, torch.zeros(2, 1, dtype=torch.long))
    logits = lm(y, y_lens).log_softmax(-1)
    want = -(logits[0, 0, 2] + logits[0, 1, 0] + logits[0, 2, 3] + logits[1, 0, 1] + logits[1, 1, 4])
    torch.testing.assert_close(PhoneLMObjective().loss(lm, batch), want)
    assert PhoneLMObjective().count(batch) == 5
    seqs = sample(lm, 3, 4)
    assert len(seqs) == 3 and all(len(s) == 4 and all(1 <= k <= 5 for k in s) for s in seqs)


def test_pretrained_weights_land_in_the_transducer_and_wrong_shapes_are_named():
    torch.manual_seed(1)
    ctc = build_model("CTC-2l-8h", input_size=5, num_classes=7)
    lm = PhoneLM(6, 8)
    trans = build_model("PreTrans-2l-8h", input_size=5, num_classes=7)
    joint_before = {k: v.clone() for k, v in trans.state_dict().items() if k.startswith(("joint", "output", "to_l"))}
    pretrained_transducer(trans, ctc, lm)
    for k, v in ctc.encoder.state_dict().items():
        assert torch.equal(trans.encoder.state_dict()[k], v)
    for k, v in lm.prediction.state_dict().items():
        assert torch.equal(trans.prediction.state_dict()[k], v)
    for k, v in joint_before.items():                     # the joint network keeps its random start
        assert torch.equal(trans.state_dict()[k], v)
    x = torch.randn(1, 6, 5)
    torch.testing.assert_close(trans.encoder(x), ctc.encoder(x))
    with pytest.raises(ValueError, match="transcription network of CTC-3l-8h does not fit PreTrans-2l-8h"):
        pretrained_transducer(trans, build_model("CTC-3l-8h", input_size=5, num_classes=7))
    with pytest.raises(ValueError, match="prediction network of the phone LM does not fit"):
        pretrained_transducer(trans, ctc, PhoneLM(6, 9))


@pytest.mark.slow
def test_run_command_trains_transducers_end_to_end(tmp_path, ci_corpus):
    from asrlib import run

    common = ["--corpus", "synthetic", "--size", "ci", "--epochs", "1", "--beam", "2", "--lr", "3e-3",
              "--device", "cpu"]
    trans = run.main(["Trans-1l-8h-nopeep", "--out", str(tmp_path / "trans"), *common])
    saved = json.loads((tmp_path / "trans" / "results.json").read_text())
    assert saved["test_per_greedy"] == trans["test_per_greedy"] and 0 < saved["test_per_beam"] <= 1.5
    assert saved["provenance"]["command"].startswith("python -m asrlib.run Trans-1l-8h-nopeep")
    pre = run.main(["PreTrans-1l-8h-nopeep", "--out", str(tmp_path / "pre"), *common])
    assert pre["pretraining"]["ctc"] == "CTC-1l-8h-nopeep" and math.isfinite(pre["pretraining"]["lm_dev_perplexity"])
    assert {"ctc-train.pt", "lm.pt", "train.pt", "model.pt"} <= {p.name for p in (tmp_path / "pre").iterdir()}
    weights = torch.load(tmp_path / "pre" / "model.pt", weights_only=True)
    assert set(weights) == set(build_model("PreTrans-1l-8h-nopeep", num_classes=weights["output.bias"].numel()).state_dict())
    # from the weights an earlier CTC run kept instead of training one (a model.pt; a checkpoint reads alike)
    torch.save(load_weights(tmp_path / "pre" / "ctc-train.pt"), tmp_path / "model.pt")
    again = run.main(["PreTrans-1l-8h-nopeep", "--out", str(tmp_path / "pre2"), "--ctc-from",
                      str(tmp_path / "model.pt"), *common])
    assert again["pretraining"]["ctc_from"].endswith("model.pt")
    with pytest.raises(SystemExit, match="does not hold a CTC-1l-8h-nopeep network"):
        run.main(["PreTrans-1l-8h-nopeep", "--out", str(tmp_path / "pre3"), "--ctc-from",
                  str(tmp_path / "trans" / "train.pt"), *common])
