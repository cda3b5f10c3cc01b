"""The Table 1 networks by name: weight counts, parsing, the errors of malformed names, initialisation."""

import pytest
import torch

from asrlib.layers import Bidirectional, Recurrent
from asrlib.models import GRAMMAR, TABLE1, AcousticModel, ModelSpec, build_model, count_parameters, parse_name
from asrlib.transducer import Transducer

# The paper's weights column, typed in independently of asrlib.models.TABLE1.
PAPER_WEIGHTS = {
    "CTC-3l-500h-tanh": 3.7, "CTC-1l-250h": 0.8, "CTC-1l-622h": 3.8, "CTC-2l-250h": 2.3,
    "CTC-3l-421h-uni": 3.8, "CTC-3l-250h": 3.8, "CTC-5l-250h": 6.8, "Trans-3l-250h": 4.3,
    "PreTrans-3l-250h": 4.3,
}


@pytest.mark.parametrize("name", sorted(PAPER_WEIGHTS))
def test_table1_networks_build_with_the_papers_weight_counts(name):
    model = build_model(name, input_size=123, num_classes=62)
    assert round(count_parameters(model) / 1e6, 1) == PAPER_WEIGHTS[name]


def test_table1_rows_are_the_paper_networks():
    assert {row.name: row.weights for row in TABLE1} == PAPER_WEIGHTS


def test_names_parse_into_their_parts():
    assert parse_name("CTC-3l-421h-uni") == ModelSpec("CTC", 3, 421, "lstm", bidirectional=False)
    assert parse_name("CTC-3l-500h-tanh") == ModelSpec("CTC", 3, 500, "tanh")
    assert parse_name("Trans-2l-64h-uni-gru") == ModelSpec("Trans", 2, 64, "gru", bidirectional=False)
    assert parse_name("CTC-1l-8h-nopeep") == ModelSpec("CTC", 1, 8, peephole=False)
    assert parse_name("CTC-2l-64h-uni-gru").name == "CTC-2l-64h-gru-uni"


def test_built_networks_have_the_named_cells_directions_and_sizes():
    model = build_model("CTC-2l-16h-gru-uni", input_size=5, num_classes=7)
    assert isinstance(model, AcousticModel) and model.encoder.num_levels == 2
    assert all(isinstance(level, Recurrent) and type(level.cell).__name__ == "GRUCell" for level in model.encoder.levels)
    assert model.output.in_features == 16 and model.output.out_features == 7
    model = build_model("PreTrans-2l-16h-tanh", input_size=5, num_classes=7)
    assert isinstance(model, Transducer) and model.spec.family == "PreTrans"
    assert all(isinstance(level, Bidirectional) for level in model.encoder.levels)
    assert model.encoder.levels[1].fwd.input_size == 32  # both directions of level 1 feed level 2
    assert model.prediction.rnn.cell.input_size == 6      # K = V - 1 phones, one-hot
    lstm = build_model("CTC-1l-8h").encoder.levels[0].fwd.cell
    assert lstm.peephole and not build_model("CTC-1l-8h-nopeep").encoder.levels[0].fwd.cell.peephole


GRAMMAR_FAULT = "cannot read network name"


@pytest.mark.parametrize("name, fault", [
    ("CTC-3l", GRAMMAR_FAULT), ("ctc-3l-250h", GRAMMAR_FAULT), ("CTC-0l-250h", GRAMMAR_FAULT),
    ("CTC-3l-0h", GRAMMAR_FAULT), ("RNN-3l-250h", GRAMMAR_FAULT), ("", GRAMMAR_FAULT), (None, GRAMMAR_FAULT),
    ("CTC-3l-250h-foo", "unknown suffix -foo"),
    ("CTC-3l-250h-tanh-gru", "repeated or conflicting suffixes"),
    ("CTC-3l-250h-uni-uni", "repeated or conflicting suffixes"),
    ("CTC-3l-250h-tanh-nopeep", "-nopeep applies to the LSTM only, not to -tanh"),
])
def test_malformed_names_name_their_fault(name, fault):
    """Each malformed name reports its own fault (and, but for -nopeep's, the grammar)."""
    with pytest.raises(ValueError) as err:
        build_model(name)
    message = str(err.value)
    assert fault in message, message
    assert (GRAMMAR in message) == ("nopeep" not in fault), message


def test_paper_initialisation_is_uniform_in_a_tenth():
    model = build_model("CTC-2l-32h", input_size=10, num_classes=5)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.abs().max() <= 0.1 and weights.std() > 0.05  # uniform(-0.1, 0.1) has std 0.0577
    torch_init = build_model("CTC-2l-32h", input_size=10, num_classes=5, init="torch")
    assert torch.cat([p.flatten() for p in torch_init.parameters()]).abs().max() > 0.1  # the output layer's 1/sqrt(64)
    with pytest.raises(ValueError, match="init"):
        build_model("CTC-1l-8h", init="xavier")
