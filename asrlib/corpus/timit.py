"""TIMIT, for readers who hold it (LDC93S1): the paper's own corpus, read into the book's cache.

Standard LDC layout, upper or lower case: ``TRAIN|TEST/DR1..DR8/<speaker>/<utt>.{WAV,PHN,TXT}``;
the WAV files carry NIST SPHERE headers (read with soundfile/libsndfile), and each ``.PHN``
line is ``start_sample end_sample phone`` at 16 kHz. As in the paper (section 4):

* training: the 462 speakers of TRAIN, with the SA sentences (read by every speaker) removed;
* development: the standard 50-speaker set from TEST (as listed by the Kaldi recipe);
* test: the 24-speaker core test set.

Point the book at it with ``ASRLIB_TIMIT=/path/to/timit`` (or ``load_corpus("timit", timit=...)``);
the utterances are converted once into the same cache format as the synthetic corpus.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np

from asrlib import features as F
from asrlib.corpus.store import (
    FORMAT_VERSION, Corpus, CorpusError, finish_corpus, read_manifest, run_jobs, utterance_path, write_manifest,
    write_utterance,
)
from asrlib.phones import TIMIT61, UnknownPhoneError
from asrlib.runtime import data_dir

# The 24 speakers of the core test set: 2 men and 1 woman from each dialect region.
CORE_TEST_SPEAKERS = frozenset({
    "mdab0", "mwbt0", "felc0", "mtas1", "mwew0", "fpas0", "mjmp0", "mlnt0", "fpkt0", "mlll0", "mtls0", "fjlm0",
    "mbpm0", "mklt0", "fnlp0", "mcmj0", "mjdh0", "fmgd0", "mgrt0", "mnjm0", "fdhc0", "mjln0", "mpam0", "fmld0",
})
# The standard 50-speaker development set, drawn from TEST outside the core test set.
DEV_SPEAKERS = frozenset({
    "faks0", "fdac1", "fjem0", "mgwt0", "mjar0", "mmdb1", "mmdm2", "mpdf0", "fcmh0", "fkms0", "mbdg0", "mbwm0",
    "mcsh0", "fadg0", "fdms0", "fedw0", "mgjf0", "mglb0", "mrtk0", "mtaa0", "mtdt0", "mthc0", "mwjg0", "fnmr0",
    "frew0", "fsem0", "mbns0", "mmjr0", "mdls0", "mdlf0", "mdvc0", "mers0", "fmah0", "fdrw0", "mrcs0", "mrjm4",
    "fcal1", "mmwh0", "fjsj0", "majc0", "mjsw0", "mreb0", "fgjd0", "fjmg0", "mroa0", "mteb0", "mjfc0", "mrjr0",
    "fmml0", "mrws1",
})
_TIMIT_PHONES = frozenset(TIMIT61)


def _child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` called ``name``, in any letter case."""
    for entry in folder.iterdir():
        if entry.name.lower() == name.lower():
            return entry
    return None


def find_root(path: str | Path) -> Path:
    """The folder that holds TRAIN and TEST: ``path`` itself, or one level below it
    (``path/TIMIT``, ``path/data``)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CorpusError(f"TIMIT folder {path} does not exist or is not a folder")
    for candidate in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if _child(candidate, "train") and _child(candidate, "test"):
            return candidate
    raise CorpusError(f"TIMIT folder {path} has no TRAIN and TEST folders (looked in it and one level below)")


def scan(path: str | Path) -> list[dict]:
    """Every utterance of the three splits, sorted: ``{"id", "split", "speaker", "wav", "phn", "txt"}``."""
    root = find_root(path)
    entries = []
    for part, split_of in (("train", lambda spk: "train"), ("test", _test_split)):
        for region in sorted(p for p in _child(root, part).iterdir() if p.is_dir()):
            for spk_dir in sorted(p for p in region.iterdir() if p.is_dir()):
                speaker = spk_dir.name.lower()
                split = split_of(speaker)
                if split is None:
                    continue
                files = {f.name.lower(): f for f in spk_dir.iterdir()}
                for name in sorted(files):
                    if not name.endswith(".phn") or name.startswith("sa"):
                        continue  # SA sentences are read by every speaker: excluded, as in the paper
                    stem = name[: -len(".phn")]
                    wav = files.get(f"{stem}.wav")
                    if wav is None:
                        raise CorpusError(f"TIMIT utterance {files[name]} has no matching .WAV file")
                    entries.append({
                        "id": f"{region.name.lower()}-{speaker}-{stem}", "split": split, "speaker": speaker,
                        "wav": str(wav), "phn": str(files[name]), "txt": str(files.get(f"{stem}.txt", "")),
                    })
    if not any(e["split"] == "train" for e in entries):
        raise CorpusError(f"TIMIT folder {root} holds no training utterances")
    return entries


def _test_split(speaker: str) -> str | None:
    if speaker in CORE_TEST_SPEAKERS:
        return "test"
    if speaker in DEV_SPEAKERS:
        return "dev"
    return None


def read_phn(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A ``.PHN`` file: start samples, end samples, phone labels (unknown labels are errors)."""
    starts, ends, phones = [], [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise CorpusError(f"{path}:{n}: expected 'start end phone', got {line!r}")
        if parts[2] not in _TIMIT_PHONES:
            raise UnknownPhoneError(f"unknown TIMIT phone {parts[2]!r} at {path}:{n}")
        starts.append(int(parts[0]))
        ends.append(int(parts[1]))
        phones.append(parts[2])
    if not phones:
        raise CorpusError(f"{path} holds no phones")
    return np.array(starts, np.int32), np.array(ends, np.int32), phones


def read_wav(path: str | Path) -> np.ndarray:
    """A TIMIT waveform (NIST SPHERE or RIFF) as int16 at 16 kHz."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="int16")
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise CorpusError(f"cannot read TIMIT audio {path}: {err}") from err
    if rate != F.SAMPLE_RATE or audio.ndim != 1 or len(audio) == 0:
        raise CorpusError(f"TIMIT audio {path} is not 16 kHz mono speech (rate {rate}, shape {audio.shape})")
    return audio


def _make(job: tuple[dict, str]) -> str:
    entry, out = job
    audio = read_wav(entry["wav"])
    starts, ends, phones = read_phn(entry["phn"])
    ends = np.minimum(ends, len(audio))  # a few files end their last phone past the audio
    keep = ends > starts
    text = ""
    if entry["txt"] and Path(entry["txt"]).exists():
        text = re.sub(r"^\d+\s+\d+\s+", "", Path(entry["txt"]).read_text().strip())
    write_utterance(Path(out), {
        "audio": audio, "starts": starts[keep], "ends": ends[keep], "phones": np.array(phones)[keep],
        "text": text, "speaker": entry["speaker"],
    })
    return entry["id"]


def build_timit(path: str | Path, root: str | Path | None = None, workers: int | None = None, progress: bool = True, **_) -> Corpus:
    """Convert TIMIT at ``path`` into the cache (once) and return it as a :class:`Corpus`."""
    source = find_root(path).resolve()
    key = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    folder = data_dir(root) / f"timit-v{FORMAT_VERSION}-{key}"
    manifest_path = folder / "manifest.json"
    entries = scan(source)
    manifest = read_manifest(manifest_path)
    if manifest is not None and len(manifest["utterances"]) == len(entries):
        return Corpus(folder, manifest)
    start = time.perf_counter()
    paths = [utterance_path(folder, e["id"]) for e in entries]
    jobs = [(e, str(path)) for e, path in zip(entries, paths) if not path.exists()]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    run_jobs(_make, jobs, workers, "reading TIMIT", progress)
    speakers = sorted({(e["speaker"], e["split"]) for e in entries})
    corpus = finish_corpus(
        folder, "timit", "timit", [{"id": e["id"], "split": e["split"]} for e in entries],
        [{"id": s, "split": split, "sex": s[0]} for s, split in speakers],
        {"source": str(source), "build_seconds": round(time.perf_counter() - start, 1)}, progress,
    )
    write_manifest(manifest_path, corpus)
    return corpus
