"""How a corpus lives on disk, whichever corpus it is: utterances, manifest, parallel builds.

Every corpus (the synthetic one of :mod:`asrlib.corpus.synthetic`, TIMIT of
:mod:`asrlib.corpus.timit`) is stored in one format under :func:`asrlib.runtime.data_dir`:

* one ``.npz`` file per utterance (16 kHz int16 audio, phone segments in samples, text, speaker
  and the 123 features), written atomically (a temporary file renamed into place), so an
  interrupted build resumes where it stopped and never leaves a half-written utterance;
* one JSON manifest with the content hash of every utterance and of the whole corpus, the
  splits, the speakers and the normalisation statistics of the training split.

:class:`Corpus` reads it back; :func:`run_jobs` builds utterances in parallel processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from asrlib import features as F
from asrlib.phones import PhoneSet
from asrlib.runtime import progress_bar

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test")


class CorpusError(RuntimeError):
    """A corpus file or folder is missing, corrupt or inconsistent (the message says which)."""


def utterance_path(folder: Path, utt_id: str) -> Path:
    """Where a corpus folder keeps one utterance."""
    return folder / "utts" / f"{utt_id}.npz"


def content_hash(record: dict) -> str:
    """SHA-256 of what an utterance *is*: audio, segmentation, phones, text and speaker."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(record["audio"], dtype="<i2").tobytes())
    h.update(np.ascontiguousarray(record["starts"], dtype="<i4").tobytes())
    h.update(np.ascontiguousarray(record["ends"], dtype="<i4").tobytes())
    h.update("\x1f".join(str(p) for p in record["phones"]).encode())
    h.update(str(record["text"]).encode())
    h.update(str(record["speaker"]).encode())
    return h.hexdigest()


def write_utterance(path: Path, record: dict) -> None:
    """Compute the features and write one utterance atomically (temporary file, then rename)."""
    feats = F.fbank123(F.pcm_to_float(record["audio"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, audio=record["audio"], starts=record["starts"], ends=record["ends"],
                phones=np.asarray(record["phones"], dtype=str), text=np.asarray(record["text"]),
                speaker=np.asarray(record["speaker"]), features=feats,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_utterance(path: Path, features: bool = True) -> dict:
    """Read one cached utterance; a missing, truncated or corrupt file is a :class:`CorpusError`."""
    keys = ["audio", "starts", "ends", "phones", "text", "speaker"] + (["features"] if features else [])
    try:
        with np.load(path, allow_pickle=False) as npz:
            rec = {k: npz[k] for k in keys}
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} is missing; run build_corpus() again to regenerate it") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as err:
        raise CorpusError(
            f"corpus file {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "delete it and run build_corpus() again to regenerate it"
        ) from err
    rec["text"], rec["speaker"] = str(rec["text"]), str(rec["speaker"])
    n = len(rec["audio"])
    if not (len(rec["starts"]) == len(rec["ends"]) == len(rec["phones"]) > 0) or rec["ends"][-1] > n:
        raise CorpusError(f"corpus file {path} has inconsistent phone boundaries; delete it and rebuild")
    if features and rec["features"].shape != (F.num_frames(n), F.NUM_FEATURES):
        raise CorpusError(
            f"corpus file {path} has features of shape {rec['features'].shape}, expected "
            f"({F.num_frames(n)}, {F.NUM_FEATURES}); delete it and rebuild"
        )
    return rec


def run_jobs(fn, jobs: list, workers: int, desc: str, progress: bool) -> None:
    """Run ``fn`` over ``jobs`` in ``workers`` fresh processes (one BLAS thread each)."""
    bar = progress_bar(total=len(jobs), desc=desc, unit="utt", disable=not progress or not jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            fn(job)
            bar.update()
    else:
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
        os.environ.update({k: "1" for k in saved})
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for _ in pool.map(fn, jobs, chunksize=8):
                    bar.update()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    bar.close()


@dataclass
class Utterance:
    """One utterance, loaded.

    Attributes
    ----------
    features : ndarray, shape (T, 123)
        Normalised with the training split's statistics.
    targets : ndarray, shape (U,)
        Phone indices 1..K (0 is the CTC blank).
    frame_targets : ndarray, shape (T,)
        The phone index of every frame, from the segmentation.
    """

    id: str
    split: str
    speaker: str
    text: str
    audio: np.ndarray          # float32 in [-1, 1], 16 kHz
    phones: list[str]          # fine labels, U of them
    starts: np.ndarray         # sample where each phone starts
    ends: np.ndarray           # sample where each phone ends (exclusive)
    features: np.ndarray
    targets: np.ndarray
    frame_targets: np.ndarray
    sample_rate: int = F.SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class Corpus:
    """A built corpus: its manifest, phone set and normaliser, and its utterances on disk."""

    folder: Path
    manifest: dict
    phones: PhoneSet = field(init=False)
    normaliser: F.Normaliser = field(init=False)

    def __post_init__(self):
        self.phones = PhoneSet(self.manifest["phone_set"])
        self.normaliser = F.Normaliser.from_dict(self.manifest["normaliser"])
        self._info = {u["id"]: u for u in self.manifest["utterances"]}

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={len(self.ids(s))}" for s in SPLITS)
        return f"Corpus({self.name!r}, {counts}, K={len(self.phones)}, hash={self.hash[:12]})"

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def hash(self) -> str:
        return self.manifest["hash"]

    @property
    def speakers(self) -> list[dict]:
        return self.manifest["speakers"]

    @property
    def utterances(self) -> list[dict]:
        """Per-utterance metadata (id, split, speaker, text, num_frames, num_phones, sha256)."""
        return self.manifest["utterances"]

    def ids(self, split: str | None = None) -> list[str]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [u["id"] for u in self.manifest["utterances"] if split is None or u["split"] == split]

    def path(self, utt_id: str) -> Path:
        return utterance_path(self.folder, utt_id)

    def load(self, utt_id: str) -> Utterance:
        if utt_id not in self._info:
            raise KeyError(f"no utterance {utt_id!r} in corpus {self.name!r}")
        return self.utterance(read_utterance(self.path(utt_id)), utt_id, self._info[utt_id]["split"])

    def utterance(self, record: dict, utt_id: str = "custom", split: str = "") -> Utterance:
        """A stored or freshly made record (:func:`speak`) as an :class:`Utterance` of this
        corpus: labels encoded with its phone set, features normalised with its statistics."""
        phones = [str(p) for p in record["phones"]]
        targets = np.asarray(self.phones.encode(phones, where=utt_id), dtype=np.int64)
        raw = record["features"] if "features" in record else F.fbank123(F.pcm_to_float(record["audio"]))
        feats = self.normaliser(raw)
        return Utterance(
            id=utt_id, split=split, speaker=record["speaker"], text=record["text"],
            audio=F.pcm_to_float(record["audio"]), phones=phones,
            starts=record["starts"].astype(np.int64), ends=record["ends"].astype(np.int64), features=feats,
            targets=targets, frame_targets=F.frame_labels(record["starts"], record["ends"], targets, len(feats)),
        )

    def verify(self) -> None:
        """Re-hash every utterance against the manifest; raise :class:`CorpusError` on a mismatch."""
        for u in self.manifest["utterances"]:
            if content_hash(read_utterance(self.path(u["id"]), features=False)) != u["sha256"]:
                raise CorpusError(f"corpus file {self.path(u['id'])} does not match the manifest; delete it and rebuild")


def finish_corpus(
    folder: Path, name: str, phone_set: str, entries: list[dict], speakers_meta: list[dict], extra: dict, progress: bool
) -> Corpus:
    """Hash every utterance, fit the normaliser on the training split, write the manifest.

    ``entries`` are ``{"id", "split"}`` dicts in the corpus's fixed order; the files are read
    back from disk, so the hash describes what was stored, whatever built it and in what order.
    """
    if not any(entry["split"] == "train" for entry in entries):
        raise CorpusError(f"{folder}: the training split is empty")
    utterances, corpus_hash = [], hashlib.sha256()
    phones = PhoneSet(phone_set)

    def training_features():
        """Read and hash every utterance in order; pass the training split's features on."""
        for entry in progress_bar(entries, desc="hashing", unit="utt", disable=not progress):
            path = utterance_path(folder, entry["id"])
            rec = read_utterance(path, features=entry["split"] == "train")
            phones.encode([str(p) for p in rec["phones"]], where=str(path))  # every label must be known
            digest = content_hash(rec)
            corpus_hash.update(f"{entry['id']} {digest}\n".encode())
            utterances.append({
                "id": entry["id"], "split": entry["split"], "speaker": rec["speaker"], "text": rec["text"],
                "num_frames": F.num_frames(len(rec["audio"])), "num_phones": len(rec["phones"]), "sha256": digest,
            })
            if entry["split"] == "train":
                yield rec["features"]

    normaliser = F.Normaliser.fit(training_features())
    manifest = {
        "format": FORMAT_VERSION, "name": name, "phone_set": phone_set, "hash": corpus_hash.hexdigest(),
        "normaliser": normaliser.to_dict(),
        "speakers": speakers_meta, "utterances": utterances, **extra,
    }
    return Corpus(folder, manifest)


def write_manifest(path: Path, corpus: Corpus) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(corpus.manifest, f)
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorpusError(f"corpus manifest {path} is corrupt ({err}); delete it and build again") from err
    return manifest if manifest.get("format") == FORMAT_VERSION else None


def finish_recording(audio: np.ndarray, sample_rate: int, segs, seed: int, text: str, speaker: str) -> dict:
    """A synthesiser's float audio and phone segments ``(start, end, label)`` (in its samples) as a
    corpus record: resampled to 16 kHz, 50-150 ms of silence added at both ends, a random peak
    level and a noise floor, as in any recording (all drawn from ``seed``), int16."""
    import librosa

    rng = np.random.default_rng(seed)
    audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=F.SAMPLE_RATE)
    scale = F.SAMPLE_RATE / sample_rate
    lead, trail = (int(x) for x in rng.integers(800, 2400, size=2))  # 50-150 ms of silence
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    audio *= rng.uniform(0.4, 0.9) / max(np.abs(audio).max(), 1e-6)
    audio += rng.normal(0.0, 3e-4, size=audio.shape).astype(np.float32)  # a noise floor, as in any recording
    bounds = [lead + round(s * scale) for s, _, _ in segs] + [len(audio)]
    bounds[0] = 0
    rows = [(b0, b1, p) for b0, b1, (_, _, p) in zip(bounds, bounds[1:], segs) if b1 > b0]
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    return {
        "audio": pcm,
        "starts": np.array([r[0] for r in rows], np.int32),
        "ends": np.array([r[1] for r in rows], np.int32),
        "phones": np.array([r[2] for r in rows]),
        "text": text,
        "speaker": speaker,
    }
