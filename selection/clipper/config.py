"""ClipperConfig: every parameter of a CLIPPER run, saved as run.json["params"] and read back on resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from selection.engines.resources import EngineSettings
from store.errors import ThresherError

ASSIGNMENTS = ("random", "balanced")
TAUS = (1, 2)  # the paper evaluates tau = 1 and tau = 2; both are always computed


@dataclass
class ClipperConfig(EngineSettings):
    """CLIPPER (papers/clipper.txt, III-B). Defaults follow the paper where its text kept the value."""

    m: int = 10
    """Queries drawn from W per demonstration. The paper's value was lost in our copy of the text
    (\"and set .\" in IV-A); 10 keeps probing cost at 10 x |P| requests and makes the chance that a
    W sample goes unprobed under random assignment about exp(-10 |P| / |W|)."""
    tau: int = 1
    """Which tau gives the default selection (P{tau}+W) and sizes the middle-perplexity baseline."""
    assignment: str = "random"
    """random (the paper: m queries uniformly per demonstration) | balanced (every W sample is
    probed about equally often; none is left unprobed when |P| * m >= |W|)."""
    max_new_tokens: int = 32
    """Greedy decoding budget for zero-shot and probe answers."""
    batch_size: int = 8
    """transformers: requests per forward batch. openai / vllm get a whole shard per call (their
    own concurrency and continuous batching apply; see engine_opts concurrency)."""
    shard_size: int = 256
    """Samples per zero-shot / perplexity shard (the unit of resume)."""
    demos_per_shard: int = 16
    """Demonstrations per probe shard (each runs its m probes together for the prefix cache)."""
    perplexity: bool = True
    """Compute ground-truth answer perplexity (Fig. 4 summaries and the mid-ppl baseline)."""
    mid_ppl_match: str = ""
    """Selection whose size the middle-perplexity baseline copies; empty = P{tau}+W."""
    unprobed_in_wu: bool = False
    """Count W samples that no demonstration probed as W_u in the P+Wu coresets (the paper's
    W_u = W \\ W_c). Off by default: an unprobed sample was never tested, so it stays out."""
    hist_bins: int = 30
    """Histogram bins over log-perplexity in summary.json."""
    limit: int | None = None
    """Seeded subset of the dataset's samples (demos, smoke tests); None = all."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(what: str) -> ThresherError:
            return ThresherError(f"clipper: {what}")

        self.validate_engine("clipper")
        if self.assignment not in ASSIGNMENTS:
            raise bad(f"--assignment {self.assignment!r} is not one of {', '.join(ASSIGNMENTS)}")
        if self.tau not in TAUS:
            raise bad(f"--tau {self.tau} is not one of {TAUS}")
        for name in ("m", "max_new_tokens", "batch_size", "shard_size", "demos_per_shard"):
            if int(getattr(self, name)) < 1:
                raise bad(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.limit is not None and self.limit < 1:
            raise bad(f"--limit must be at least 1 (got {self.limit})")
        if self.mid_ppl_match and self.mid_ppl_match not in selection_names():
            raise bad(f"mid_ppl_match {self.mid_ppl_match!r} is not one of {selection_names()}")

    @property
    def default_selection(self) -> str:
        return f"P{self.tau}+W"

    @property
    def mid_ppl_reference(self) -> str:
        return self.mid_ppl_match or self.default_selection

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipperConfig:
        """Unknown keys are an error (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ThresherError(f"clipper params: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**data)


def selection_names() -> list[str]:
    """The coreset selections of a CLIPPER run, in the order run.json lists them."""
    return [f"P{t}+{w}" for t in TAUS for w in ("W", "Wc", "Wu")]
