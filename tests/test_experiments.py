"""The Table 1 sweep: scaled networks keep the paper's comparisons, and a killed sweep loses nothing."""

import json

import pytest
import torch

from asrlib import experiments, robustness
from asrlib.experiments import SCALES, by_network, scaled_name
from asrlib.evaluate import log_probs_of, score
from asrlib.fusion import fusion
from asrlib.models import TABLE1, build_model, count_parameters

ONLY = ["CTC-1l-250h", "CTC-2l-250h"]
COMPARED = ("model", "weights", "epochs", "dev_per", "test_per_greedy", "test_per_beam", "test_errors_beam", "dev_per_curve")


def test_scaled_networks_keep_the_shape_and_the_papers_equal_weights_equal():
    weights = {}
    for row in TABLE1:
        name = scaled_name(row.name, 1 / 16)
        paper, ours = build_model(row.name).spec, build_model(name).spec
        assert (ours.family, ours.levels, ours.cell, ours.bidirectional) == (paper.family, paper.levels, paper.cell, paper.bidirectional)
        weights[row.name] = count_parameters(build_model(name))
    for name in ("CTC-1l-622h", "CTC-3l-421h-uni", "CTC-3l-500h-tanh"):  # 3.8M (3.7M) in the paper, as CTC-3l-250h
        assert abs(weights[name] / weights["CTC-3l-250h"] - 1) < 0.03
    assert scaled_name("PreTrans-3l-250h", 1 / 16) == scaled_name("CTC-3l-250h", 1 / 16).replace("CTC", "PreTrans")
    assert scaled_name("CTC-3l-250h", 1.0) == "CTC-3l-250h"


def test_unknown_names_and_scales_are_refused():
    with pytest.raises(ValueError, match="not in Table 1"):
        experiments.table1("smoke", only=["CTC-4l-250h"])
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        experiments.table1("huge")
    with pytest.raises(ValueError, match="fraction"):
        scaled_name("CTC-3l-250h", 2.0)


def test_a_killed_sweep_resumes_to_the_same_results_file(tmp_path, monkeypatch):
    whole = experiments.table1("smoke", only=ONLY, out=tmp_path / "whole")

    run, calls = experiments._run, []

    def killed_at_the_second_row(argv):
        calls.append(argv[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run(argv)

    monkeypatch.setattr(experiments, "_run", killed_at_the_second_row)
    with pytest.raises(KeyboardInterrupt):
        experiments.table1("smoke", only=ONLY, out=tmp_path / "killed")
    saved = json.loads((tmp_path / "killed" / "table1-smoke.json").read_text())
    assert list(saved["rows"]) == ["CTC-1l-250h/seed0"]             # the finished row was kept
    resumed = experiments.table1("smoke", only=ONLY, out=tmp_path / "killed")
    assert len(calls) == 3 and calls[2] == calls[1]                  # only the killed row ran again
    assert list(resumed["rows"]) == list(whole["rows"])
    for key, row in whole["rows"].items():
        assert {k: resumed["rows"][key][k] for k in COMPARED} == {k: row[k] for k in COMPARED}
    assert json.loads((tmp_path / "killed" / "table1-smoke.json").read_text()) == resumed
    assert list(by_network(resumed)) == ONLY and all(len(v) == 1 for v in by_network(resumed).values())


def test_a_pretrained_transducer_row_starts_from_the_weights_its_ctc_row_kept(tmp_path, monkeypatch):
    calls = []

    def first_run_only(argv):
        calls.append(argv)
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "_run", first_run_only)
    with pytest.raises(FileNotFoundError, match="run the CTC row of its shape first"):
        experiments.table1("smoke", seeds=(1,), only=["PreTrans-3l-250h"], out=tmp_path)
    ctc = tmp_path / "table1-smoke" / "seed1" / scaled_name("CTC-3l-250h", SCALES["smoke"].weight_fraction)
    ctc.mkdir(parents=True)
    (ctc / "model.pt").touch()
    with pytest.raises(KeyboardInterrupt):
        experiments.table1("smoke", seeds=(1,), only=["PreTrans-3l-250h"], out=tmp_path)
    argv = calls[0]
    assert argv[0].startswith("PreTrans-") and argv[argv.index("--ctc-from") + 1] == str(ctc / "model.pt")


def test_every_scale_is_documented_and_runs_asrlib_run_arguments():
    from asrlib.run import parser

    for name, scale in SCALES.items():
        assert f"``{name}``" in experiments.__doc__
        parser().parse_args(["CTC-1l-8h", "--out", "x", *scale.recipe])  # no unknown argument


def test_the_robustness_ablation_records_both_scores_keeps_weights_and_resumes(tmp_path, ci_corpus, monkeypatch):
    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))  # the session's CI corpus, not a new one
    record = robustness.robustness("smoke", out=tmp_path, only=["none", "SpecAugment"], argv=["robustness", "--scale", "smoke"])
    assert list(record["rows"]) == ["none", "SpecAugment"]
    for row in record["rows"].values():
        assert 0 <= row["synthetic_test_per"] and 0 <= row["real_per"] and len(row["clips"]) >= 15
        assert row["provenance"]["command"] == "python -m asrlib.experiments robustness --scale smoke"
        # each epoch on the human clips: one epoch, so the same network as the row's own scores
        [epoch] = row["each_epoch"]
        assert epoch["epoch"] == 1 and epoch["dev_per"] == row["dev_per"]
        assert (epoch["real_per"], epoch["human_dev_per"]) == (row["real_per"], row["human_dev_per"])
    assert record["rows"]["SpecAugment"]["augment"]["freq_masks"] == 2
    path = tmp_path / "robustness-smoke.json"
    model = robustness.load_robust_model(path, json.loads(path.read_text()), "none", ci_corpus.phones.num_classes)
    assert count_parameters(model) == count_parameters(build_model("CTC-1l-8h-nopeep", num_classes=ci_corpus.phones.num_classes))
    with pytest.raises(FileNotFoundError, match="only"):
        robustness.load_robust_model(path, record, "SpecAugment", ci_corpus.phones.num_classes)
    again = robustness.robustness("smoke", out=tmp_path, only=["none"], argv=["robustness", "--scale", "smoke"])
    assert again["rows"] == record["rows"]  # a finished row is not run again
    assert all(0 <= row["human_dev_per"] for row in record["rows"].values())
    older = json.loads(path.read_text())  # a kept row scored before the development clips existed gets their PER
    del older["rows"]["none"]["human_dev_per"]
    path.write_text(json.dumps(older))
    assert robustness.robustness("smoke", out=tmp_path, only=["none"])["rows"] == record["rows"]
    with pytest.raises(ValueError, match="unknown rows"):
        robustness.robustness("smoke", out=tmp_path, only=["louder"])


# a second stage that cannot move the weights: one epoch under weight noise at a vanishing learning rate
STILL = {"lr": 1e-12, "weight_noise": 0.075, "noise_per": "batch"}


def test_a_second_stage_row_starts_from_its_first_stages_weights(tmp_path, ci_corpus, monkeypatch):
    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))
    # a second stage of "none": one epoch under weight noise at a learning rate too small to move the weights
    rows = {"none": robustness.Row("train", model="CTC-2l-8h-nopeep"),
            "then noise": robustness.Row("train", start="none", changes=STILL),
            "then more noise": robustness.Row("train", start="then noise", changes=STILL)}
    monkeypatch.setattr(robustness, "ROBUSTNESS", rows)
    monkeypatch.setattr(robustness, "KEEP_WEIGHTS", tuple(rows))
    with pytest.raises(ValueError, match="train it first"):
        robustness.robustness("smoke", out=tmp_path, only=["then noise"])
    record = robustness.robustness("smoke", out=tmp_path)
    row, first = record["rows"]["then noise"], record["rows"]["none"]
    assert row["start"] == "none" and row["second_stage"]["weight_noise"] == 0.075
    assert row["seconds"] > first["seconds"]  # the first stage's time is included
    path = tmp_path / "robustness-smoke.json"
    before, after, third = (robustness.load_robust_model(path, record, n, ci_corpus.phones.num_classes).state_dict()
                            for n in rows)  # every stage keeps the first stage's network
    fresh = build_model("CTC-2l-8h-nopeep", num_classes=ci_corpus.phones.num_classes, init="torch").state_dict()
    for key in before:
        assert torch.allclose(after[key], before[key], atol=1e-6) and not torch.allclose(after[key], fresh[key])
        assert torch.allclose(third[key], before[key], atol=1e-6)


def test_a_row_can_name_its_own_network(tmp_path, ci_corpus, monkeypatch):
    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))
    monkeypatch.setattr(robustness, "ROBUSTNESS", {"deeper": robustness.Row("train", model="CTC-2l-8h-nopeep")})
    monkeypatch.setattr(robustness, "KEEP_WEIGHTS", ("deeper",))
    record = robustness.robustness("smoke", out=tmp_path)
    assert record["rows"]["deeper"]["model"] == "CTC-2l-8h-nopeep"
    model = robustness.load_robust_model(tmp_path / "robustness-smoke.json", record, "deeper", ci_corpus.phones.num_classes)
    assert count_parameters(model) == count_parameters(build_model("CTC-2l-8h-nopeep", num_classes=ci_corpus.phones.num_classes))


def test_a_pretrained_transducer_row_starts_from_its_ctc_row_and_a_phone_lm(tmp_path, ci_corpus, monkeypatch):
    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))
    rows = {"none": robustness.Row("train", model="CTC-2l-8h-nopeep"),
            "transducer": robustness.Row("train", model="PreTrans-2l-8h-nopeep", start="none", changes=STILL),
            "fresh transducer": robustness.Row("train", model="PreTrans-2l-8h-nopeep")}
    monkeypatch.setattr(robustness, "ROBUSTNESS", rows)
    monkeypatch.setattr(robustness, "KEEP_WEIGHTS", tuple(rows))
    with pytest.raises(ValueError, match="give it a start"):
        robustness.robustness("smoke", out=tmp_path, only=["fresh transducer"])
    record = robustness.robustness("smoke", out=tmp_path, only=["none", "transducer"])
    row = record["rows"]["transducer"]
    assert row["model"] == "PreTrans-2l-8h-nopeep" and row["lm_dev_perplexity"] > 1
    assert 0 <= row["synthetic_test_per"] and 0 <= row["real_per"] and len(row["clips"]) >= 15
    path = tmp_path / "robustness-smoke.json"
    ctc, transducer = (robustness.load_robust_model(path, record, n, ci_corpus.phones.num_classes) for n in ("none", "transducer"))
    fresh = build_model("PreTrans-2l-8h-nopeep", num_classes=ci_corpus.phones.num_classes, init="torch")
    assert type(transducer) is type(fresh)
    for key, value in ctc.encoder.state_dict().items():  # the transcription network is the CTC row's
        assert torch.allclose(transducer.encoder.state_dict()[key], value, atol=1e-6)
    for key, value in transducer.prediction.state_dict().items():  # the prediction network was trained (the LM)
        assert not torch.allclose(value, fresh.prediction.state_dict()[key])


def test_fusion_chooses_the_lm_on_the_human_dev_clips_and_scores_the_test_clips_once(tmp_path, ci_corpus, monkeypatch):
    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))
    monkeypatch.setattr(robustness, "ROBUSTNESS", {"none": robustness.Row("train")})
    monkeypatch.setattr(robustness, "KEEP_WEIGHTS", ("none",))
    record = robustness.robustness("smoke", out=tmp_path)
    entry = fusion("none", "smoke", out=tmp_path, orders=(2,), weights=(0.0, 0.5), bonuses=(0.0, 3.0), progress=False)
    grid = entry["grid"]
    assert len(grid) == 4 and entry["human_dev_per"] == min(g["human_dev_per"] for g in grid)
    assert entry["chosen_on_synthetic_dev"]["dev_per"] == min(g["dev_per"] for g in grid)
    plain = next(g for g in grid if g["lm_weight"] == 0 and g["insertion_bonus"] == 0)
    assert plain["real_per"] == record["rows"]["none"]["real_per"]          # no LM: the row's own decoding
    for choice in (entry, entry["chosen_on_synthetic_dev"]):                  # each scored as the grid scored it
        same = next(g for g in grid if all(g[k] == choice[k] for k in ("order", "lm_weight", "insertion_bonus")))
        assert choice["real_per"] == same["real_per"] and choice["dev_per"] == same["dev_per"]
    assert entry["lm_dev_perplexity"]["2"] > 1
    assert len({g["real_per"] for g in grid}) > 1                            # the LM changes what is heard
    saved = json.loads((tmp_path / "fusion-smoke.json").read_text())
    assert saved["rows"]["none"] == entry and entry["provenance"]["command"].endswith("--row none")

    # a model of English instead: its own file, the grid scored on people only, the network chosen on them too
    import asrlib.ngram
    small = asrlib.ngram.english_phone_sentences(sentences=200, words=500)
    monkeypatch.setattr(asrlib.ngram, "english_phone_sentences", lambda: small)
    (tmp_path / "fusion-english-smoke.json").write_text(json.dumps({"scale": "smoke", "rows": {"worse": {"human_dev_per": 99.0}}}))
    english = fusion("none", "smoke", out=tmp_path, weights=(0.0, 0.5), bonuses=(0.0, 3.0), progress=False,
                     text="english")
    assert len(english["grid"]) == 3 * 4 and all("dev_per" not in g for g in english["grid"])
    assert english["human_dev_per"] == min(g["human_dev_per"] for g in english["grid"])
    assert english["without_lm"]["real_per"] == plain["real_per"] and english["dev_per"] >= 0  # a PER (an untrained network inserts)
    assert english["english_sentences"] == 200 and set(english["lm_dev_perplexity"]) == {"synthetic dev", "human dev"}
    saved = json.loads((tmp_path / "fusion-english-smoke.json").read_text())
    assert saved["chosen"] == "none" and saved["rows"]["none"] == english and "worse" in saved["rows"]
    # a model of English words: a grid over its share of the mixture, its own file, then the rule between the files
    from asrlib.fusion import LEXICON_BACKOFF, LEXICON_MIXES, chosen_pipeline

    assert chosen_pipeline("smoke", tmp_path)[:2] == ("english", "none")
    words = fusion("none", "smoke", out=tmp_path, weights=(0.0, 0.5), bonuses=(0.0, 3.0), progress=False, text="lexicon")
    assert len(words["grid"]) == len(LEXICON_MIXES) * 4 and {g["mix"] for g in words["grid"]} == set(LEXICON_MIXES)
    assert words["human_dev_per"] == min(g["human_dev_per"] for g in words["grid"]) and "order" not in words
    same = next(g for g in words["grid"] if all(g[k] == words[k] for k in ("mix", "lm_weight", "insertion_bonus")))
    assert words["real_per"] == same["real_per"] and words["without_lm"]["real_per"] == plain["real_per"]
    assert json.loads((tmp_path / "fusion-lexicon-smoke.json").read_text())["chosen"] == "none"
    text, row, entry = chosen_pipeline("smoke", tmp_path)
    assert (text, entry) == (("lexicon", words) if words["human_dev_per"] < english["human_dev_per"] else ("english", english))
    # the same words reading pauses as boundaries: a third file, and a tie goes to the files above it
    paused = fusion("none", "smoke", out=tmp_path, orders=(0.9,), weights=(0.0, 0.5), bonuses=(0.0, 3.0), progress=False,
                    text="lexicon-pauses")
    assert json.loads((tmp_path / "fusion-lexicon-pauses-smoke.json").read_text())["rows"]["none"] == paused
    firsts = {"english": english, "lexicon": words, "lexicon-pauses": paused}
    best = min(firsts, key=lambda t: (firsts[t]["human_dev_per"], list(firsts).index(t)))
    assert chosen_pipeline("smoke", tmp_path) == (best, "none", firsts[best])
    top = min(english["human_dev_per"], words["human_dev_per"])
    for shift, wins in ((0.0, False), (-0.5, True)):  # level with the best above it, then lower
        saved = {"scale": "smoke", "chosen": "x", "rows": {"x": {"human_dev_per": top + shift}}}
        (tmp_path / "fusion-lexicon-pauses-smoke.json").write_text(json.dumps(saved))
        assert (chosen_pipeline("smoke", tmp_path)[0] == "lexicon-pauses") == wins
    # the chapter rebuilds the pipeline's model of English from its entry: it must hear what the grid heard
    from asrlib import realspeech
    from asrlib.fusion import model_of_english

    model = robustness.load_robust_model(tmp_path / "robustness-smoke.json", record, "none", ci_corpus.phones.num_classes)
    for text, chosen in firsts.items():
        lm = model_of_english(text, chosen["order" if text == "english" else "mix"], small, ci_corpus.phones)
        setting = {"lm": lm, "lm_weight": chosen["lm_weight"], "insertion_bonus": chosen["insertion_bonus"]}
        again = realspeech.score(model, ci_corpus.phones, ci_corpus.normaliser, realspeech.clips(split="test"), "beam",
                                 beam=record["recipe"]["beam"], **setting)
        assert again.errors.rate == chosen["real_per"], text
    built = {text: model_of_english(text, value, small, ci_corpus.phones).lm
             for text, value in (("english", 2), ("lexicon", 0.7), ("lexicon-pauses", 0.9))}
    assert built["english"].order == 2 and not built["english"].pauses
    assert [(m.mix, m.pauses, m.backoff.order) for m in (built["lexicon"], built["lexicon-pauses"])] == [
        (0.7, False, LEXICON_BACKOFF), (0.9, True, LEXICON_BACKOFF)]
    with pytest.raises(ValueError, match="unknown model of English"):
        model_of_english("transcriptions", 2, small, ci_corpus.phones)
    with pytest.raises(ValueError, match="unknown text"):
        fusion("none", "smoke", out=tmp_path, text="klingon")


def test_a_row_in_the_dictionarys_labels_trains_on_them_and_is_scored_both_ways(tmp_path, ci_corpus, monkeypatch):
    from asrlib import data

    monkeypatch.setenv("ASRLIB_DATA", str(ci_corpus.folder.parent))
    seen = []  # the targets of every training batch's dataset, as train() gets it

    def recording_train(model, objective, train_set, dev_set, config, **kwargs):
        seen.append((train_set.labels, dev_set.labels))
        return real_train(model, objective, train_set, dev_set, config, **kwargs)

    from asrlib import train as train_module
    real_train = train_module.train
    monkeypatch.setattr(train_module, "train", recording_train)
    monkeypatch.setattr(robustness, "ROBUSTNESS", {"words": robustness.Row("train", labels="dictionary")})
    monkeypatch.setattr(robustness, "KEEP_WEIGHTS", ("words",))
    record = robustness.robustness("smoke", out=tmp_path)
    row = record["rows"]["words"]
    assert seen == [("dictionary", "dictionary")] and row["labels"] == "dictionary"
    model = robustness.load_robust_model(tmp_path / "robustness-smoke.json", record, "words", ci_corpus.phones.num_classes)
    for labels, key in (("voice", "synthetic_test_per"), ("dictionary", "synthetic_test_per_own_labels")):
        split = data.SpeechDataset(ci_corpus, "test", labels=labels)
        assert row[key] == score(log_probs_of(model, split, "cpu"), ci_corpus.phones, "beam", beam=2).errors.rate
    dictionary = data.SpeechDataset(ci_corpus, "test", labels="dictionary")
    assert any(a.y.tolist() != b.y.tolist() for a, b in zip(dictionary, data.SpeechDataset(ci_corpus, "test")))
