"""The TIMIT reader, on small fake TIMIT trees that the tests write (upper and lower case)."""

import numpy as np
import pytest
import soundfile

from asrlib.corpus import CorpusError, load_corpus
from asrlib.phones import UnknownPhoneError
from asrlib.corpus.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS, build_timit, read_phn, scan

PHONES = ["h#", "sh", "iy", "hv", "ae", "dcl", "d", "q", "ix", "h#"]


def _write_utterance(folder, stem, rng, upper):
    name = stem.upper() if upper else stem.lower()
    n = 16000 + int(rng.integers(0, 4000))
    audio = (rng.normal(0, 3000, n)).astype(np.int16)
    soundfile.write(folder / f"{name}.{'WAV' if upper else 'wav'}", audio, 16000, format="NIST", subtype="PCM_16")
    bounds = np.linspace(0, n, len(PHONES) + 1).astype(int)
    lines = [f"{a} {b} {p}" for a, b, p in zip(bounds, bounds[1:], PHONES)]
    (folder / f"{name}.{'PHN' if upper else 'phn'}").write_text("\n".join(lines) + "\n")
    (folder / f"{name}.{'TXT' if upper else 'txt'}").write_text(f"0 {n} She had your dark suit.\n")


def make_fake_timit(root, upper=True):
    """2 training speakers, a dev speaker, a core-test speaker and an unused test speaker."""
    rng = np.random.default_rng(0)
    layout = {
        ("train", "dr1", "fcjf0"): ["sa1", "sa2", "si1027", "sx127"],
        ("train", "dr2", "mabc0"): ["sa1", "si500", "sx400"],
        ("test", "dr1", "faks0"): ["sa1", "si943", "sx133"],   # development set
        ("test", "dr1", "mdab0"): ["sa1", "si1039", "sx139"],  # core test set
        ("test", "dr2", "mxyz0"): ["si1", "sx1"],              # in neither: unused, as in the paper
    }
    case = str.upper if upper else str.lower
    for (part, region, speaker), utts in layout.items():
        folder = root / case(part) / case(region) / case(speaker)
        folder.mkdir(parents=True)
        for stem in utts:
            _write_utterance(folder, stem, rng, upper)
    return root


def test_speaker_lists_are_the_standard_ones():
    assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50
    assert not CORE_TEST_SPEAKERS & DEV_SPEAKERS
    assert sum(s.startswith("f") for s in CORE_TEST_SPEAKERS) == 8  # one woman per region


@pytest.mark.parametrize("upper", [True, False], ids=["upper-case", "lower-case"])
def test_scan_finds_the_splits_and_drops_sa_sentences(tmp_path, upper):
    entries = scan(make_fake_timit(tmp_path / "timit", upper))
    by_split = {s: sorted(e["id"] for e in entries if e["split"] == s) for s in ("train", "dev", "test")}
    assert by_split["train"] == ["dr1-fcjf0-si1027", "dr1-fcjf0-sx127", "dr2-mabc0-si500", "dr2-mabc0-sx400"]
    assert by_split["dev"] == ["dr1-faks0-si943", "dr1-faks0-sx133"]
    assert by_split["test"] == ["dr1-mdab0-si1039", "dr1-mdab0-sx139"]


def test_build_and_load_through_the_one_setting(tmp_path, monkeypatch):
    timit = make_fake_timit(tmp_path / "LDC93S1" / "TIMIT")
    monkeypatch.setenv("ASRLIB_TIMIT", str(tmp_path / "LDC93S1"))  # one level above TRAIN/TEST
    corpus = load_corpus(root=tmp_path / "cache", workers=1, progress=False)
    assert corpus.name == "timit" and corpus.phones.num_classes == 62
    u = corpus.load("dr1-mdab0-sx139")
    assert u.phones == PHONES and u.text == "She had your dark suit."
    assert u.features.shape == (1 + len(u.audio) // 160, 123)
    assert corpus.phones.fold(u.phones) == ["sil", "sh", "iy", "hh", "ae", "sil", "d", "ih", "sil"]
    # the second call reads the cache
    again = build_timit(timit, root=tmp_path / "cache", progress=False)
    assert again.hash == corpus.hash


def test_missing_folder_unknown_phone_and_corrupt_audio_are_named(tmp_path):
    with pytest.raises(CorpusError, match="no-such-timit does not exist"):
        scan(tmp_path / "no-such-timit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="has no TRAIN and TEST folders"):
        scan(tmp_path / "empty")
    timit = make_fake_timit(tmp_path / "timit")
    phn = timit / "TRAIN" / "DR1" / "FCJF0" / "SX127.PHN"
    phn.write_text(phn.read_text().replace(" sh\n", " shh\n"))
    with pytest.raises(UnknownPhoneError, match=r"'shh' at .*SX127.PHN:2"):
        read_phn(phn)
    with pytest.raises(UnknownPhoneError, match="SX127.PHN:2"):
        build_timit(timit, root=tmp_path / "cache", workers=1, progress=False)
    phn.write_text(phn.read_text().replace(" shh\n", " sh\n"))
    wav = timit / "TEST" / "DR1" / "MDAB0" / "SX139.WAV"
    wav.write_bytes(wav.read_bytes()[:300])
    with pytest.raises(CorpusError, match=r"cannot read TIMIT audio .*SX139.WAV"):
        build_timit(timit, root=tmp_path / "cache", workers=1, progress=False)
