"""The synthetic corpus: deterministic, TIMIT-shaped, complete, and safe against damage."""

import collections
import re
import shutil

import numpy as np
import pytest

from asrlib import corpus as C
from asrlib.phones import SCORING39, PhoneSet
from asrlib import runtime
from asrlib.corpus.sentences import sentence


def test_sentences_are_reproducible_words_without_digits():
    texts = [sentence(s) for s in range(300)]
    assert texts == [sentence(s) for s in range(300)]
    assert len(set(texts)) == len(texts)
    for t in texts:
        assert re.fullmatch(r"[A-Z][a-z ,']+[.?]", t), t


def test_every_accent_speaks_everyday_english_with_the_corpus_labels():
    """Words outside the corpus's grammar make espeak emit rarer symbols (a syllabic n, a glottal
    stop, RP's schwa of 'to'); each is spelled as a label of the set, so any sentence can be spoken."""
    from asrlib.corpus.synth import synthesise
    from asrlib.phones import ESPEAK_ALIASES

    text = "Korea's audience in the area had gotten to see a button, on average."
    labels, raw = PhoneSet("espeak"), set()
    for accent in C.ACCENTS:
        speaker = next(s for s in C.speakers() if s.voice.accent == accent)
        raw |= {symbol.lstrip("',") for _, symbol in synthesise(text, speaker.voice, 0)[1]}
        record = C.speak(text, speaker)
        assert labels.encode(record["phones"]), accent
    assert set(ESPEAK_ALIASES) <= raw  # the sentence still exercises every alias


def test_speakers_are_distinct_and_splits_are_speaker_disjoint_like_timit():
    spk = C.speakers()
    voices = {s.voice for s in spk}
    assert len(spk) == len(voices) == 64
    assert len({s.id for s in spk}) == 64
    by_split = collections.Counter(s.split for s in spk)
    assert by_split == {"train": 48, "dev": 8, "test": 8}
    for split in ("dev", "test"):
        regions = [s.region for s in spk if s.split == split]
        assert sorted(regions) == list(range(1, 9)), f"{split} must have one speaker per region"
        assert {s.sex for s in spk if s.split == split} == {"m", "f"}
    specs = C.utterance_specs(2)
    assert len(specs) == 128 and len({s.id for s in specs}) == 128


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown corpus size 'huge'"):
        C.utterance_specs("huge")


@pytest.fixture(scope="module")
def three_builds(tmp_path_factory):
    """The same small corpus built with 1 worker, 2 workers, and 2 workers in shuffled order."""
    builds = {}
    for label, kwargs in {"1 worker": dict(workers=1), "2 workers": dict(workers=2),
                          "2 workers, shuffled": dict(workers=2, order_seed=7)}.items():
        builds[label] = C.build_corpus(1, root=tmp_path_factory.mktemp("det"), progress=False, **kwargs)
    return builds


def test_output_is_identical_for_any_number_of_workers_and_any_order(three_builds):
    hashes = {label: c.hash for label, c in three_builds.items()}
    print(hashes)
    assert len(set(hashes.values())) == 1, hashes
    per_utt = [[u["sha256"] for u in c.utterances] for c in three_builds.values()]
    assert per_utt[0] == per_utt[1] == per_utt[2]


def test_every_scoring_class_occurs_in_train_and_test(ci_corpus):
    phones = ci_corpus.phones
    counts = {}
    for split in ("train", "dev", "test"):
        c = collections.Counter()
        for utt_id in ci_corpus.ids(split):
            c.update(phones.fold(ci_corpus.load(utt_id).phones))
        counts[split] = c
    print(f"{'class':6s} {'train':>6s} {'dev':>6s} {'test':>6s}")
    for k in SCORING39:
        print(f"{k:6s} {counts['train'][k]:6d} {counts['dev'][k]:6d} {counts['test'][k]:6d}")
    for split in ("train", "test"):
        missing = [k for k in SCORING39 if counts[split][k] == 0]
        assert missing == [], f"classes missing from {split}: {missing}"


def test_ci_corpus_is_shaped_like_timit(ci_corpus):
    assert len(ci_corpus.ids("train")) == 480 and len(ci_corpus.ids("dev")) == 80 and len(ci_corpus.ids("test")) == 80
    speakers = {split: {u["speaker"] for u in ci_corpus.utterances if u["split"] == split} for split in C.SPLITS}
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["dev"] & speakers["test"])
    frames = np.array([u["num_frames"] for u in ci_corpus.utterances])
    assert 200 < frames.mean() < 450  # TIMIT averages about 3 s


def test_an_utterance_has_audio_text_speaker_and_tiling_phones(ci_corpus):
    u = ci_corpus.load(ci_corpus.ids("test")[3])
    assert u.sample_rate == 16000 and u.audio.dtype == np.float32 and np.abs(u.audio).max() <= 1
    assert u.text and u.speaker.startswith("dr")
    assert u.starts[0] == 0 and u.ends[-1] == len(u.audio)
    np.testing.assert_array_equal(u.starts[1:], u.ends[:-1])  # the phones tile the audio
    assert (u.ends > u.starts).all()
    assert u.phones[0] == "h#" and u.phones[-1] == "h#"
    assert u.features.shape == (1 + len(u.audio) // 160, 123)
    assert (u.frame_targets > 0).all() and len(u.targets) == len(u.phones)
    # silence really is quiet and speech is not: the segmentation is acoustically right
    lead = u.audio[: u.ends[0]]
    speech = u.audio[u.starts[1] : u.ends[-2]]
    assert np.sqrt((lead**2).mean()) < 0.05 * np.sqrt((speech**2).mean())


def test_features_are_normalised_with_training_statistics_only(ci_corpus):
    train = np.concatenate([ci_corpus.load(i).features for i in ci_corpus.ids("train")])
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)
    test = np.concatenate([ci_corpus.load(i).features for i in ci_corpus.ids("test")])
    assert np.abs(test.mean(0)).max() > 1e-2  # statistics were not refitted on the test split


def test_resume_after_interruption_and_damage(tmp_path):
    first = C.build_corpus(1, root=tmp_path, workers=1, progress=False)
    folder = first.folder
    ids = first.ids()
    # an interrupted build: the manifest never written, some utterances missing, a stray
    # temporary file, and one utterance truncated mid-write
    (folder / "manifest-1per.json").unlink()
    for utt_id in ids[:5]:
        first.path(utt_id).unlink()
    (folder / "utts" / f".{ids[5]}.abc.tmp").write_bytes(b"partial")
    damaged = first.path(ids[6])
    damaged.write_bytes(damaged.read_bytes()[:1000])
    second = C.build_corpus(1, root=tmp_path, workers=1, progress=False)
    assert second.manifest["synthesised"] == 6
    assert second.hash == first.hash
    second.verify()


def test_a_damaged_file_is_an_error_naming_it(tmp_path):
    corpus = C.build_corpus(1, root=tmp_path, workers=1, progress=False)
    path = corpus.path(corpus.ids()[0])
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(C.CorpusError, match=rf"{re.escape(str(path))}.*(corrupt|truncated)"):
        corpus.load(corpus.ids()[0])
    path.unlink()
    with pytest.raises(C.CorpusError, match=rf"{re.escape(str(path))} is missing"):
        corpus.load(corpus.ids()[0])
    manifest = corpus.folder / "manifest-1per.json"
    manifest.write_text("{not json")
    with pytest.raises(C.CorpusError, match="manifest .* is corrupt"):
        C.build_corpus(1, root=tmp_path, workers=1, progress=False)


def test_corpus_choice_by_one_setting(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.CORPUS_ENV, "librispeech")
    with pytest.raises(ValueError, match="unknown corpus 'librispeech'"):
        C.load_corpus(root=tmp_path)
    monkeypatch.setenv(runtime.CORPUS_ENV, "timit")
    monkeypatch.delenv(runtime.TIMIT_ENV, raising=False)
    with pytest.raises(C.CorpusError, match="ASRLIB_TIMIT"):
        C.load_corpus(root=tmp_path)
    monkeypatch.delenv(runtime.CORPUS_ENV)
    monkeypatch.setenv(runtime.TIMIT_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(C.CorpusError, match="nowhere does not exist"):
        C.load_corpus(root=tmp_path)


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.DATA_ENV, str(tmp_path))
    assert runtime.data_dir() == tmp_path
    assert runtime.data_dir(tmp_path / "x") == tmp_path / "x"
