"""Search a run by meaning: a text query encoded with the run's own CLIP, or "more like" a sample.

A stored vector is [image ; text] / sqrt(2), each half L2-normalised (selection.ofa.encode).
A text query t (normalised) becomes, by `on`:
  image: [sqrt(2) t ; 0]   -> score = cos(t, image)
  text:  [0 ; sqrt(2) t]   -> score = cos(t, instruction text)
  both:  [t ; t] / sqrt(2) -> score = the mean of the two cosines
"More like" uses the sample's own stored vector: score = cosine of the whole feature.
That layout is OFA's per-tower normalisation. Under Eq. 2 (`normalize=concat`, the default since
it follows the paper) a half's length is its tower's share of the norm and differs per row, so
the index's inner products rank a larger candidate set and the candidates are re-scored with
the true cosines to the query (`_rescore`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from selection.ofa.config import EncodeConfig
from selection.search.index import EmbeddingIndex
from store import runs
from store.errors import NotFound, ThresherError

if TYPE_CHECKING:
    from selection.ofa.encode import Encoder

TARGETS = ("both", "image", "text")


@dataclass(frozen=True)
class Hit:
    rank: int
    row: int  # position in the run's input.parquet
    sample_id: int
    orig_id: str
    score: float
    question: str


@dataclass(frozen=True)
class SearchResult:
    run_id: str
    query: str  # the text, or "like:<sample_id>"
    on: str
    backend: str
    rows_searched: int
    seconds: float  # the search itself, without loading the index or the encoder
    hits: list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hits": [asdict(h) for h in self.hits]}


def encoder_settings(run_dir: Path, _seen: tuple[Path, ...] = ()) -> EncodeConfig:
    """The encoder that wrote this run's embeddings, following `encode.from_run` to their source."""
    meta = runs.read_run_json(run_dir)
    enc = (meta.get("params") or {}).get("encode")
    if not isinstance(enc, dict) or "encoder" not in enc:
        raise ThresherError(
            f"run {run_dir.name} ({meta.get('method')}) records no CLIP encoder in run.json "
            "params.encode; only OFA, ofa-apply and baseline runs can be searched by text "
            "(--like works on any run with embeddings)."
        )
    source = enc.get("from_run")
    if source and run_dir not in _seen:
        return encoder_settings(runs.resolve_run_dir(run_dir.parent, source), (*_seen, run_dir))
    return EncodeConfig(
        encoder=enc["encoder"],
        pretrained=enc.get("pretrained") or "none",
        normalize=enc.get("normalize", "per-tower"),  # runs before Eq. 2 was the default
    )


class RunSearcher:
    """One run's index, input ids and (lazily) its text encoder; reuse it for many queries."""

    def __init__(
        self,
        run_dir: Path,
        *,
        backend: str = "auto",
        device: str = "cpu",
        nlist: int | None = None,
        nprobe: int = 16,
    ) -> None:
        self.run_dir = run_dir
        self.device = device
        self.index = EmbeddingIndex.open(run_dir, backend=backend, nlist=nlist, nprobe=nprobe)
        inp = pq.read_table(run_dir / runs.INPUT, columns=["sample_id", "orig_id", "question"])
        if inp.num_rows < self.index.n:
            raise ThresherError(
                f"run {run_dir.name}: {self.index.n} embedding rows but {inp.num_rows} input rows"
            )
        self.sample_ids = inp.column("sample_id").to_numpy()
        self._orig = inp.column("orig_id")
        self._question = inp.column("question")
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    def row_of(self, sample: int | str) -> int:
        """The input row of a sample, by sample_id or by the id in the source file (orig_id)."""
        rows = np.empty(0, np.int64)
        if isinstance(sample, int) or str(sample).isdigit():
            rows = np.flatnonzero(self.sample_ids == int(sample))
        if not len(rows):
            import pyarrow.compute as pc

            rows = np.flatnonzero(pc.equal(self._orig, str(sample)).to_numpy(zero_copy_only=False))
        if not len(rows):
            raise NotFound(
                f"sample {sample} is not in run {self.run_dir.name} (neither a sample_id nor an "
                "id of the source file)"
            )
        if rows[0] >= self.index.n:
            raise ThresherError(f"sample {sample} has no embedding yet (the run is still encoding)")
        return int(rows[0])

    def encode_text(self, text: str):
        with self._lock:  # one model load even when two workers ask at once
            if self._encoder is None:
                cfg = encoder_settings(self.run_dir)  # before torch: a run without one fails fast
                cfg.device = self.device
                from selection.ofa.encode import load_encoder

                self._encoder = load_encoder(cfg)
        import torch

        enc = self._encoder
        if enc.dim != self.index.dim:
            raise ThresherError(
                f"encoder {enc.name} gives {enc.dim}-d features, the run's embeddings are "
                f"{self.index.dim}-d"
            )
        # One 77-token sequence: one thread. Two threads measured 1.3-3.7 s against 0.3 s for
        # ViT-B-32 on a loaded 2-core box (the threads wait on each other, not on the math).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                t = enc.model.encode_text(enc.tokenizer([text]).to(enc.device)).float()
        finally:
            torch.set_num_threads(threads)
        t = torch.nn.functional.normalize(t, dim=-1)[0].cpu().numpy()
        return t

    def _rescore(self, q: np.ndarray, on: str, top: int) -> Any:
        """Top rows by cosine(query, image half / text half / mean of both) for Eq. 2 features:
        the inner products pick 10x the candidates, the exact cosines order them."""
        from selection.search.index import Neighbours

        cand = self.index.search(q, min(self.index.n, max(10 * top, 100)))
        half = self.index.dim // 2
        t = q[:half] if on == "image" else q[half:]
        t = t / max(float(np.linalg.norm(t)), 1e-12)
        scores = []
        for r in cand.rows:
            v = self.index.vector(int(r))
            cos = [
                float(h @ t) / max(float(np.linalg.norm(h)), 1e-12) for h in (v[:half], v[half:])
            ]
            scores.append({"image": cos[0], "text": cos[1], "both": (cos[0] + cos[1]) / 2}[on])
        order = np.argsort(-np.asarray(scores), kind="stable")[:top]
        return Neighbours(cand.rows[order], np.asarray(scores, dtype=np.float32)[order])

    def query_vector(self, text: str, on: str) -> np.ndarray:
        if on not in TARGETS:
            raise ThresherError(f"--on {on!r}: use one of {', '.join(TARGETS)}")
        t = self.encode_text(text)
        zero = np.zeros_like(t)
        r2 = math.sqrt(2.0)
        parts = {"image": (r2 * t, zero), "text": (zero, r2 * t), "both": (t / r2, t / r2)}[on]
        return np.concatenate(parts).astype(np.float32)

    def search(
        self,
        text: str | None = None,
        *,
        like: int | str | None = None,
        top: int = 20,
        on: str = "both",
    ) -> SearchResult:
        if (text is None) == (like is None):
            raise ThresherError("give a query text or --like SAMPLE_ID (one of them)")
        if top < 1:
            raise ThresherError(f"--top must be at least 1, got {top}")
        if like is not None:
            row = self.row_of(like)
            q, exclude = self.index.vector(row), row
            if not np.any(q):
                raise ThresherError(f"sample {like} was not encoded (no image or unreadable)")
            label, on = f"like:{self.sample_ids[row]}", "both"
        else:
            assert text is not None
            q, exclude, label = self.query_vector(text, on), None, text
        t0 = time.perf_counter()
        # A text query loaded the run's encoder (query_vector): its settings say how rows were made.
        if like is None and self._encoder is not None and self._encoder.normalize == "concat":
            found = self._rescore(q, on, top)
        else:
            found = self.index.search(q, top, exclude=exclude)
        seconds = time.perf_counter() - t0
        hits = [
            Hit(
                rank=i + 1,
                row=int(r),
                sample_id=int(self.sample_ids[r]),
                orig_id=str(self._orig[int(r)]),
                score=round(float(s), 6),
                question=str(self._question[int(r)]),
            )
            for i, (r, s) in enumerate(zip(found.rows, found.scores, strict=True))
        ]
        return SearchResult(
            self.run_dir.name, label, on, self.index.backend, self.index.n, seconds, hits
        )
