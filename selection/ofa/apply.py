"""Once-for-all application: build an `ofa-apply` config from a saved selector (no retraining)."""

from __future__ import annotations

import json
import os

from selection.ofa.config import EncodeConfig, OFAApplyConfig
from selection.ofa.selector import META, resolve_selector_path


def apply_config(
    selector: str | os.PathLike[str],
    *,
    ratio: float = 0.15,
    budget: int | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
    shard_size: int = 4096,
    pretrained: str | None = None,
    from_run: str | None = None,
) -> OFAApplyConfig:
    """The selector's own encoder (name and weights tag) is used, so the features match what it saw.

    `pretrained` overrides only where the weights now live (e.g. a local copy of the same tag).
    New samples get the cluster of the nearest stored centroid; nothing is re-fit.
    """
    folder = resolve_selector_path(selector)
    meta = json.loads((folder / META).read_text())
    enc = EncodeConfig(
        encoder=meta["encoder"],
        pretrained=pretrained or meta["pretrained"],
        # the selector's features: selectors saved before Eq. 2 was the default are per-tower
        normalize=meta.get("normalize", "per-tower"),
        device=device,
        batch_size=batch_size,
        workers=workers,
        shard_size=shard_size,
        from_run=from_run,
    )
    return OFAApplyConfig(selector=str(folder), encode=enc, ratio=ratio, budget=budget)
