"""The book's speech corpus: phone-labelled, multi-speaker, generated offline, cached on disk.

TIMIT cannot be downloaded, so by default the book trains on a corpus that this module
generates with espeak-ng (:mod:`asrlib.synth`), shaped like TIMIT:

* 8 accents play the part of TIMIT's 8 dialect regions; each has 8 speakers (5 male, 3 female
  voice variants, each with its own speaking rate and pitch): 64 speakers in all;
* speaker-disjoint splits as in TIMIT, scaled down: per region 6 training speakers, 1
  development speaker (TIMIT's 50-speaker dev set) and 1 test speaker (the 24-speaker core
  test set), alternating male and female;
* every utterance has 16 kHz audio, its text, its speaker, and every phone with its start
  and end sample, the analogue of TIMIT's ``.PHN`` files.

Sizes: ``"ci"`` (10 utterances per speaker, 640 in all, about half a minute to build on 2
cores) for the book's CPU runs and its tests, ``"full"`` (80 per speaker, 5120 in all, 3840
for training as in TIMIT's 3696) for real training.

The cache lives in ``$ASRLIB_DATA`` (default ``~/.cache/asrlib``): one ``.npz`` file per
utterance, written atomically (a temporary file renamed into place), so an interrupted build
resumes where it stopped and never leaves a half-written utterance; then one manifest per
size with the content hash, the splits and the normalisation statistics of the training
split. Readers who hold TIMIT use it instead with one setting (see :func:`load_corpus`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from asrlib import features as F
from asrlib.phones import PhoneSet, normalise_espeak
from asrlib.sentences import sentence
from asrlib.synth import ESPEAK_SAMPLE_RATE, Voice, synthesise

DATA_ENV = "ASRLIB_DATA"
CORPUS_ENV = "ASRLIB_CORPUS"
TIMIT_ENV = "ASRLIB_TIMIT"
FORMAT_VERSION = 1

# The 8 accents, in the role of TIMIT's dialect regions DR1..DR8.
ACCENTS = (
    "en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
)
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
SPEAKERS_PER_REGION = 8          # 5 male, 3 female
SIZES = {"ci": 10, "full": 80}   # utterances per speaker
SPLITS = ("train", "dev", "test")


class CorpusError(RuntimeError):
    """A corpus file or folder is missing, corrupt or inconsistent (the message says which)."""


@dataclass(frozen=True)
class Speaker:
    id: str          # e.g. "dr3-f2": region 3, second female speaker
    region: int
    sex: str         # "m" or "f"
    split: str
    voice: Voice


def speakers() -> list[Speaker]:
    """The 64 speakers of the synthetic corpus, in a fixed order."""
    out = []
    for r, accent in enumerate(ACCENTS, start=1):
        rng = random.Random(f"asrlib-speakers-{accent}")
        males = rng.sample(MALE_VARIANTS, 5)
        females = rng.sample(FEMALE_VARIANTS, 3)
        # TIMIT's core test set has men and women from every region; alternate here.
        test_sex, dev_sex = ("m", "f") if r % 2 else ("f", "m")
        pool = {"m": [("m", v) for v in males], "f": [("f", v) for v in females]}
        test = pool[test_sex].pop()
        dev = pool[dev_sex].pop()
        ordered = [(s, v, "train") for s, v in pool["m"] + pool["f"]] + [(*dev, "dev"), (*test, "test")]
        counts = {"m": 0, "f": 0}
        for sex, variant, split in ordered:
            counts[sex] += 1
            voice = Voice(accent, variant, rate=rng.randrange(140, 196, 5), pitch=rng.randrange(30, 71, 5))
            out.append(Speaker(f"dr{r}-{sex}{counts[sex]}", r, sex, split, voice))
    return out


@dataclass(frozen=True)
class UtteranceSpec:
    id: str
    speaker: Speaker
    text: str
    seed: int


def utterance_specs(size: str | int = "ci") -> list[UtteranceSpec]:
    """Every utterance of a corpus size, in a fixed order. ``size`` is a name of
    :data:`SIZES` or a number of utterances per speaker."""
    per_speaker = _per_speaker(size)
    specs = []
    for spk in speakers():
        for k in range(per_speaker):
            utt_id = f"{spk.id}-s{k:03d}"
            seed = zlib.crc32(utt_id.encode())
            specs.append(UtteranceSpec(utt_id, spk, sentence(seed), seed))
    return specs


def _per_speaker(size: str | int) -> int:
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown corpus size {size!r}; expected one of {sorted(SIZES)} or a number of utterances per speaker")
        return SIZES[size]
    if int(size) < 1:
        raise ValueError(f"utterances per speaker must be at least 1, got {size}")
    return int(size)


def data_root(root: str | Path | None = None) -> Path:
    """Where corpora are cached: ``root``, else ``$ASRLIB_DATA``, else ``~/.cache/asrlib``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or Path.home() / ".cache" / "asrlib"
    return Path(root).expanduser()


# --------------------------------------------------------------------------------------------
# one utterance: synthesis, segmentation, features, atomic write


def _segments(events: list[tuple[int, str]], num_samples: int, where: str) -> list[tuple[int, int, str]]:
    """Phoneme events (start sample, symbol) to segments (start, end, fine label) that tile the
    audio: the span before the first phone is ``h#``, empty phones are dropped, pauses at the
    ends become ``h#`` and neighbouring silences merge."""
    events = sorted(events, key=lambda e: e[0])
    starts = [min(max(s, 0), num_samples) for s, _ in events]
    ends = starts[1:] + [num_samples]
    segs = [(0, starts[0], "h#")] if starts and starts[0] > 0 else []
    segs += [(s, e, normalise_espeak(sym, where)) for (s, e), (_, sym) in zip(zip(starts, ends), events) if e > s]
    if not segs:
        raise CorpusError(f"{where}: the synthesiser produced no phones")
    segs = [(s, e, "h#" if p == "pau" and (i == 0 or i == len(segs) - 1) else p) for i, (s, e, p) in enumerate(segs)]
    merged = [segs[0]]
    for s, e, p in segs[1:]:
        ps, _, pp = merged[-1]
        if p == pp and p in ("h#", "pau"):
            merged[-1] = (ps, e, p)
        else:
            merged.append((s, e, p))
    return merged


def _render(spec: UtteranceSpec) -> dict:
    """Synthesise one utterance and give it TIMIT's shape: 16 kHz int16 audio with silence at
    both ends, and phone segments in samples."""
    import librosa

    audio22, events = synthesise(spec.text, spec.speaker.voice, spec.seed)
    segs = _segments(events, len(audio22), spec.id)
    rng = np.random.default_rng(spec.seed)
    audio = librosa.resample(F.pcm_to_float(audio22), orig_sr=ESPEAK_SAMPLE_RATE, target_sr=F.SAMPLE_RATE)
    scale = F.SAMPLE_RATE / ESPEAK_SAMPLE_RATE
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
        "text": spec.text,
        "speaker": spec.speaker.id,
    }


def speak(text: str, speaker: Speaker | str, seed: int = 0) -> dict:
    """Any sentence in the voice of one of the corpus's speakers (a speaker id such as
    ``"dr5-f1"``, or a :class:`Speaker`): 16 kHz int16 ``audio`` with its phone ``starts``,
    ``ends`` and ``phones``, exactly as the corpus stores its utterances."""
    if isinstance(speaker, str):
        known = {s.id: s for s in speakers()}
        if speaker not in known:
            raise ValueError(f"unknown speaker {speaker!r}; the speakers are {sorted(known)}")
        speaker = known[speaker]
    return _render(UtteranceSpec(f"{speaker.id}-custom", speaker, text, seed))


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


def _make(job: tuple[UtteranceSpec, str]) -> str:
    spec, path = job
    write_utterance(Path(path), _render(spec))
    return spec.id


def _run_jobs(fn, jobs: list, workers: int, desc: str, progress: bool) -> None:
    """Run ``fn`` over ``jobs`` in ``workers`` fresh processes (one BLAS thread each)."""
    bar = tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress or not jobs)
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


# --------------------------------------------------------------------------------------------
# the corpus on disk


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
        for entry in tqdm(entries, desc="hashing", unit="utt", disable=not progress):
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


def build_corpus(
    size: str | int = "ci",
    root: str | Path | None = None,
    workers: int | None = None,
    order_seed: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Generate (or load from the cache) the synthetic corpus.

    Parameters
    ----------
    size : str or int
        ``"ci"`` (640 utterances), ``"full"`` (5120), or utterances per speaker.
    root : path, optional
        Cache folder; default ``$ASRLIB_DATA`` or ``~/.cache/asrlib``.
    workers : int, optional
        Processes that synthesise in parallel (default: the number of CPU cores, at most 8).
        The result does not depend on it.
    order_seed : int, optional
        Synthesise in a shuffled order (for testing that the order does not matter either).
    progress : bool
        Show a progress bar.
    """
    specs = utterance_specs(size)
    folder = data_root(root) / f"synthetic-v{FORMAT_VERSION}"
    label = size if isinstance(size, str) else f"{int(size)}per"
    manifest_path = folder / f"manifest-{label}.json"
    manifest = read_manifest(manifest_path)
    if manifest is not None and all(utterance_path(folder, s.id).exists() for s in specs):
        return Corpus(folder, manifest)

    start = time.perf_counter()
    todo = []
    for spec in specs:
        path = utterance_path(folder, spec.id)
        if path.exists():
            try:
                read_utterance(path)
                continue
            except CorpusError:
                path.unlink()  # a damaged file from an earlier run: make it again
        todo.append((spec, str(path)))
    if order_seed is not None:
        random.Random(order_seed).shuffle(todo)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    _run_jobs(_make, todo, workers, f"synthesising corpus '{label}'", progress)

    speakers_meta = [
        {"id": s.id, "region": s.region, "sex": s.sex, "split": s.split, "accent": s.voice.accent,
         "variant": s.voice.variant, "rate": s.voice.rate, "pitch": s.voice.pitch}
        for s in speakers()
    ]
    corpus = finish_corpus(
        folder, f"synthetic-{label}", "espeak", [{"id": s.id, "split": s.speaker.split} for s in specs],
        speakers_meta, {"size": label, "build_seconds": round(time.perf_counter() - start, 1), "synthesised": len(todo)},
        progress,
    )
    write_manifest(manifest_path, corpus)
    return corpus


def load_corpus(
    name: str | None = None, size: str | int = "ci", root: str | Path | None = None, timit: str | Path | None = None, **kwargs
) -> Corpus:
    """The corpus every chapter uses, chosen by one setting.

    ``name`` is ``"synthetic"`` (the default) or ``"timit"``; when omitted it is read from
    ``$ASRLIB_CORPUS``, and setting ``$ASRLIB_TIMIT`` to a TIMIT folder selects TIMIT on its own.
    """
    timit = timit or os.environ.get(TIMIT_ENV) or None
    name = name or os.environ.get(CORPUS_ENV) or ("timit" if timit else "synthetic")
    if name == "synthetic":
        return build_corpus(size, root=root, **kwargs)
    if name == "timit":
        from asrlib.timit import build_timit

        if timit is None:
            raise CorpusError(f"the TIMIT corpus was asked for, but no folder was given: set ${TIMIT_ENV} or pass timit=")
        return build_timit(timit, root=root, **kwargs)
    raise ValueError(f"unknown corpus {name!r}; expected 'synthetic' or 'timit'")
