"""What a robustness row's training needs beyond the trainer (:mod:`asrlib.robustness`): the
paper's pretrained transducer made from a CTC row's network, for a second stage that changes the
network, and a hook that scores every epoch on the human clips as the row trains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from asrlib.checkpoint import save_json
from asrlib.models import build_model, parse_name


def pretrained_from(name: str, ctc, train_set, dev_set, config, folder: Path, device=None) -> tuple:
    """The paper's pretrained transducer (section 3.2) from a row's CTC network: network ``name``
    (a ``PreTrans`` one) with ``ctc``'s weights as its transcription network and, as its
    prediction network, a phone LM trained on ``train_set``'s transcriptions with ``config``
    (no augmentation, no weight noise; checkpoint ``folder/lm.pt``). Returns the transducer and
    the LM's best dev perplexity."""
    from asrlib.pretrain import pretrained_transducer, train_phone_lm
    from asrlib.run import frames_per_phone

    spec = parse_name(name)
    if spec.family != "PreTrans":
        raise ValueError(f"a second stage keeps its first stage's network or makes a PreTrans network from it; "
                         f"got {name!r}")
    torch.manual_seed(config.seed)
    model = build_model(name, num_classes=ctc.num_classes, init="torch")
    model.init_blank_prior_(frames_per_phone(train_set))
    lm, perplexity = train_phone_lm(spec, model.prediction.num_phones, train_set, dev_set,
                                    dataclasses.replace(config, augment=None, weight_noise=0.0), folder / "lm.pt", device)
    return pretrained_transducer(model, ctc.cpu(), lm.cpu()), perplexity


class EpochsOnPeople:
    """An ``on_epoch`` hook for :func:`asrlib.train.train` that scores each epoch's network on the
    human development and test clips (``score(model)`` returns both results) and keeps the rates
    in ``path`` (a JSON list), so that a resumed run keeps the epochs before its resume."""

    def __init__(self, path: Path, score):
        self.path, self.score = Path(path), score
        self.scores = json.loads(self.path.read_text()) if self.path.exists() else []

    def __call__(self, epoch: int, model) -> None:
        model.eval()
        dev, test = self.score(model)
        model.train()
        self.scores = [s for s in self.scores if s["epoch"] < epoch] + [
            {"epoch": epoch, "human_dev_per": dev.errors.rate, "real_per": test.errors.rate}]
        save_json(self.path, self.scores)
