"""Feature extractors and the persistent per-image feature cache every metric reads through.

The images themselves (folders, single files, zips; safe decoding) come from `stylekit.data.imageset`.

Why a cache: `stylekit score` runs after every training snapshot against the same reference folder,
and recomputing Inception/CLIP features of 50k reference images each time dominates the run. Each
image's features are stored under a key of (resolved path, size, mtime, extractor name, mode), so:
- a rerun on an unchanged folder decodes and computes nothing (hits are read, not re-validated);
- a changed or added file gets a new key and is recomputed alone;
- undecodable files are remembered too (with their reason), so they are not re-decoded either;
- every row carries a digest over its key and bytes; a row that fails it is recomputed ("rebuilt"),
  and a database file that is not SQLite any more is moved aside and started afresh.

Storage: one SQLite file per (extractor, mode) under $STYLEKIT_HOME/features. SQLite gives atomic
transactions and file locking for free, so two cron jobs scoring at once do not tear the cache.
Zip members keep their cache entries when the zip is rewritten with the same member bytes (their
identity is the member's CRC-32, see `ImageItem`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from stylekit.data.images import ImageReport
from stylekit.data.imageset import ImageItem, ImageSet, ItemDataset, SquareResize, collate_list
from stylekit.errors import BadInput
from stylekit.home import stylekit_home
from stylekit.io.console import get_console
from stylekit.nets.clip import encode_images
from stylekit.train.distributed import (
    DistInfo,
    agree,
    broadcast_object,
    broadcast_rows,
    gather_lists,
    gather_rows,
    shard,
)


def features_dir() -> Path:
    return stylekit_home() / "features"


# ----------------------------------------------------------------------------------------------
# Extractors


@runtime_checkable
class FeatureExtractor(Protocol):
    """What the cache and the extraction loop need from a feature model.

    name: identity of the model AND its weights (a different checkpoint must give a different name);
    mode: the preprocessing variant; dim: feature length; cleanfid_decode: decode like clean-fid;
    preprocess: picklable PIL RGB -> tensor [3, H, W] (runs in DataLoader workers);
    __call__: batch [N, 3, H, W] (CPU) -> features [N, dim] (array or tensor; moved to CPU here).
    """

    name: str
    mode: str
    dim: int
    cleanfid_decode: bool
    preprocess: Callable[[Image.Image], torch.Tensor]

    def __call__(self, batch: torch.Tensor) -> Any: ...


def file_identity(path: str | os.PathLike[str]) -> str:
    """A short identity of a weights file for extractor names (name, size, mtime)."""
    p = Path(path)
    try:
        st = p.stat()
        raw = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        raw = str(p)
    return f"{p.name}@{hashlib.sha256(os.fsencode(raw)).hexdigest()[:10]}"


class EmbedderExtractor:
    """Wrap any `embed(images [N,3,S,S] in [0,1]) -> [N, D]` (a style model export, CLIP...) as an extractor."""

    cleanfid_decode = False

    def __init__(self, name: str, embed: Callable[[torch.Tensor], Any], dim: int, size: int = 224,
                 device: torch.device | str = "cpu", resample: int = Image.Resampling.BICUBIC) -> None:
        self.name = name
        self.mode = f"{size}px"
        self.dim = dim
        self.embed = embed
        self.device = torch.device(device)
        self.preprocess = SquareResize(size, resample)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch.to(self.device))


def clip_extractor(bundle: Any) -> EmbedderExtractor:
    """Raw (un-normalised) CLIP image embeddings: CLIP-FID uses them raw, CMMD and style normalise."""

    return EmbedderExtractor(
        name=f"clip:{bundle.model_name}:{bundle.weights_id}",
        embed=lambda x: encode_images(bundle, x, normalize=False),
        dim=bundle.embed_dim,
        size=bundle.image_size,
        device=bundle.device,
    )


# ----------------------------------------------------------------------------------------------
# The cache


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text)[:80] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def cache_key(item: ImageItem, extractor_name: str, mode: str) -> str:
    return hashlib.sha256(json.dumps([item.key_path, item.size, item.mtime_ns, extractor_name, mode]).encode()).hexdigest()


def _to_db(text: str | None) -> str | bytes | None:
    """Lossless SQLite value for a path-bearing string: the str itself, or, for a non-UTF-8 file name
    (held in Python as surrogate escapes, which SQLite cannot encode), its raw bytes as a BLOB."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _from_db(value: str | bytes | None) -> str | None:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _digest(key: str, dim: int, data: bytes, error: str | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{key}|{dim}|{error or ''}|".encode("utf-8", "surrogateescape"))
    h.update(data)
    return h.hexdigest()


@dataclass
class CacheEntry:
    features: np.ndarray | None
    error: str | None


class FeatureCache:
    """SQLite store of per-image features for one (extractor, mode)."""

    def __init__(self, root: str | os.PathLike[str], extractor_name: str, mode: str) -> None:
        self.root = Path(root)
        self.path = self.root / f"{_safe(extractor_name + '--' + mode)}.sqlite"
        self.rebuilt = 0
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as exc:
                aside = self.path.with_name(self.path.name + f".corrupt-{int(time.time())}")
                get_console().warn(f"feature cache {self.path} is unreadable ({exc}); moved to {aside.name}, rebuilding")
                os.replace(self.path, aside)
                self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=120)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS features (key TEXT PRIMARY KEY, path TEXT, dim INTEGER, data BLOB, error TEXT, digest TEXT)"
        )
        conn.execute("SELECT count(*) FROM features").fetchone()
        conn.commit()
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        conn = self._connect()
        found: dict[str, CacheEntry] = {}
        for start in range(0, len(keys), 500):
            chunk = [_to_db(k) for k in keys[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            try:
                rows = conn.execute(f"SELECT key, dim, data, error, digest FROM features WHERE key IN ({marks})", chunk).fetchall()
            except sqlite3.DatabaseError as exc:
                get_console().warn(f"feature cache {self.path} read failed ({exc}); recomputing")
                return found
            for db_key, dim, data, db_error, digest in rows:
                key, error = _from_db(db_key), _from_db(db_error)
                data = bytes(data or b"")
                if digest != _digest(key, dim, data, error) or (error is None and len(data) != 4 * dim):
                    self.rebuilt += 1
                    continue
                feats = None if error is not None else np.frombuffer(data, dtype=np.float32).copy()
                found[key] = CacheEntry(feats, error)
        return found

    def put_many(self, rows: Sequence[tuple[str, str, np.ndarray | None, str | None]]) -> None:
        """rows: (key, display path, features or None, error or None)."""
        conn = self._connect()
        values = []
        for key, path, feats, error in rows:
            data = b"" if feats is None else np.ascontiguousarray(feats, dtype=np.float32).tobytes()
            dim = 0 if feats is None else int(np.asarray(feats).size)
            values.append((_to_db(key), _to_db(path), dim, data, _to_db(error), _digest(key, dim, data, error)))
        try:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)", values)
        except sqlite3.DatabaseError as exc:
            get_console().warn(f"could not write feature cache {self.path}: {exc}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ----------------------------------------------------------------------------------------------
# Extraction


@dataclass
class FeatureResult:
    """Features of the usable images of a set, in the set's order, and what happened on the way."""

    features: np.ndarray  # [n_used, dim] float32
    items: list[ImageItem]
    report: ImageReport
    hits: int = 0
    computed: int = 0
    rebuilt: int = 0
    seconds: float = 0.0
    extractor: str = ""
    mode: str = ""
    per_rank: list[int] = field(default_factory=list)  # under torchrun: images each rank computed, in rank order

    def stats(self) -> dict[str, Any]:
        out = {"extractor": self.extractor, "mode": self.mode, "hits": self.hits, "computed": self.computed,
               "rebuilt": self.rebuilt, "seconds": round(self.seconds, 3)}
        return out | ({"computed_per_rank": self.per_rank} if self.per_rank else {})


def run_model(extractor: FeatureExtractor, tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """Run the model on tensors grouped by shape (legacy_tensorflow keeps native sizes)."""
    out: list[np.ndarray | None] = [None] * len(tensors)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    for idx in groups.values():
        with torch.inference_mode():
            feats = extractor(torch.stack([tensors[i] for i in idx]))
        feats = feats.detach().float().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float32)
        feats = feats.reshape(len(idx), -1)
        for j, i in enumerate(idx):
            out[i] = feats[j]
    return out  # type: ignore[return-value]


def auto_loader_workers(device: torch.device | str | None) -> int | None:
    """--workers auto: on CUDA, decoding processes (one per core, up to 8: the GPU outruns one decoder);
    elsewhere None: one decoding thread beside the model (see `_batches`)."""
    if device is not None and torch.device(device).type == "cuda":
        from stylekit.data.prepare import available_cores

        return min(8, available_cores())
    return None


def _batches(dataset: ItemDataset, batch_size: int, workers: int | None) -> Iterator[list[Any]]:
    """The dataset's items in order, `batch_size` at a time.

    workers=None: a background thread decodes the next batch while the caller runs the model on this
    one. PIL releases the GIL while it decodes and resizes, so on a CPU the decoding overlaps the
    network without a second process (no start-up, no copies between processes, and no extra
    processes competing with the model's own threads); the batches, and so the features, are the same
    as serial decoding. workers=0: decoded in this thread; N: N DataLoader processes.
    """
    if workers is not None:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                             num_workers=max(0, workers), collate_fn=collate_list)
        yield from loader
        return
    starts = range(0, len(dataset), batch_size)

    def load(start: int) -> list[Any]:
        return [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylekit-decode") as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for nxt in starts[1:]:
            ahead = pool.submit(load, nxt)
            assert pending is not None
            yield pending.result()
            pending = ahead
        if pending is not None:
            yield pending.result()


def _open_store(cache: bool | str | os.PathLike[str], extractor: FeatureExtractor) -> FeatureCache | None:
    if not cache:
        return None
    return FeatureCache(features_dir() if cache is True else Path(cache), extractor.name, extractor.mode)


def _read_plan(store: FeatureCache | None, keys: list[str], dim: int) -> tuple[list[int], list[int], dict[int, str], np.ndarray]:
    """From the cache: (indices to compute, indices with cached features, cached errors by index, those features)."""
    entries: dict[str, CacheEntry] = {}
    if store is not None:
        try:
            entries = store.get_many(keys)
        except (OSError, sqlite3.Error) as exc:
            get_console().warn(f"feature cache unavailable ({exc}); computing without it")
    misses, hits, errors, rows = [], [], {}, []
    for i, key in enumerate(keys):
        entry = entries.get(key)
        if entry is None:
            misses.append(i)
        elif entry.error is not None or entry.features is None:
            errors[i] = entry.error or "no features"
        elif entry.features.size != dim:  # an entry of another extractor version: recompute it
            misses.append(i)
        else:
            hits.append(i)
            rows.append(entry.features)
    return misses, hits, errors, np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)


def _compute(items: list[ImageItem], keys: list[str], todo: list[int], extractor: FeatureExtractor, store: FeatureCache | None,
             batch_size: int, workers: int | None, task: Any) -> dict[int, CacheEntry]:
    """Features (or the decoding error) of items[todo], written to the cache batch by batch (a kill loses one batch)."""
    out: dict[int, CacheEntry] = {}
    if not todo:
        return out
    dataset = ItemDataset([items[i] for i in todo], extractor.preprocess, bool(extractor.cleanfid_decode))
    if workers is None:
        workers = auto_loader_workers(getattr(extractor, "device", None))
    for batch in _batches(dataset, max(1, batch_size), workers):
        good = [(j, t) for j, t, err in batch if t is not None]
        feats = run_model(extractor, [t for _, t in good]) if good else []
        for (j, _), f in zip(good, feats, strict=True):
            if f.size != extractor.dim:
                raise BadInput(f"extractor {extractor.name} returned {f.size} values, expected {extractor.dim}")
            out[todo[j]] = CacheEntry(f, None)
        for j, _, err in batch:
            if err is not None:
                out[todo[j]] = CacheEntry(None, err)
        if store is not None:
            store.put_many([(keys[todo[j]], items[todo[j]].key_path, out[todo[j]].features, out[todo[j]].error) for j, _, _ in batch])
        task.advance(len(batch))
    return out


def extract_features(
    image_set: ImageSet,
    extractor: FeatureExtractor,
    cache: bool | str | os.PathLike[str] = True,
    batch_size: int = 32,
    workers: int | None = 0,
    description: str | None = None,
    dist: DistInfo | None = None,
) -> FeatureResult:
    """Features of every decodable image of `image_set` (cached); undecodable ones are skipped and reported.

    `cache`: True = $STYLEKIT_HOME/features, a path = that folder, False = no cache. `workers`:
    decoding processes (0 = decode in this thread), None = auto (`auto_loader_workers` for the
    extractor's device). The features are the same for any `workers`.

    Under torchrun (`dist`): rank 0 reads the cache and tells every rank what is missing; each rank
    computes its block of the misses (`shard`) and writes its own rows to its cache (SQLite locks
    make concurrent writers safe); the blocks are gathered, so every rank returns the same result,
    equal to one process's up to the float round-off of other batch layouts.
    """
    start = time.perf_counter()
    items = image_set.items
    store = _open_store(cache, extractor)
    keys = [cache_key(it, extractor.name, extractor.mode) for it in items]
    main = dist is None or dist.is_main
    plan = agree(lambda: _read_plan(store, keys, extractor.dim) if main else None, dist)
    misses, hits, cached_errors = broadcast_object(plan[:3] if main else None, dist) if dist is not None else plan[:3]
    hit_rows = broadcast_rows(plan[3] if main else None, dist)
    mine = [misses[j] for j in shard(len(misses), dist)]
    ranks = dist.world_size if dist is not None else 1
    with get_console().progress(len(misses), description or f"features ({extractor.name})", ranks=ranks) as task:
        computed = agree(lambda: _compute(items, keys, mine, extractor, store, batch_size, workers, task), dist)
    done = [i for i in mine if computed[i].features is not None]
    done_rows = gather_rows(np.stack([computed[i].features for i in done]).astype(np.float32) if done
                            else np.zeros((0, extractor.dim), np.float32), dist)
    done = gather_lists(done, dist)
    failed = dict(gather_lists([(i, computed[i].error) for i in mine if computed[i].features is None], dist))
    per_rank = gather_lists([len(mine)], dist)
    rows = dict(zip(hits, hit_rows, strict=True)) | dict(zip(done, done_rows, strict=True))
    errors = cached_errors | failed
    report = ImageReport()
    used: list[ImageItem] = []
    vectors: list[np.ndarray] = []
    for i, item in enumerate(items):
        if i in errors:
            report.skip(item.key_path if item.member is None else f"{item.file}::{item.member}", errors[i])
            continue
        used.append(item)
        vectors.append(rows[i])
    report.used = len(used)
    rebuilt = store.rebuilt if store is not None else 0
    if store is not None:
        store.close()
    feats = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, extractor.dim), np.float32)
    return FeatureResult(feats, used, report, len(hits) + len(cached_errors), len(misses), rebuilt, time.perf_counter() - start,
                         extractor.name, extractor.mode, per_rank if ranks > 1 else [])
