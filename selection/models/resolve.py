"""Where a model comes from: a local folder, or a hub name that downloads unless offline.

Offline (`thresher --offline` or HF_HUB_OFFLINE=1) a hub name must already be in the Hugging Face
cache; one that is not fails at once with a message saying so, instead of after a network timeout
deep inside transformers or open_clip. `cached_models()` lists what the cache holds, for
`thresher models` and the TUI pickers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.errors import ThresherError

_TRUE = ("1", "true", "yes", "on")
OPEN_CLIP_HUB = "hf-hub:"


def offline() -> bool:
    """HF_HUB_OFFLINE (or the older TRANSFORMERS_OFFLINE) is set."""
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def set_offline() -> None:
    """Offline for this process and every job it starts (they inherit the environment)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def is_cached(repo_id: str) -> bool:
    """A config.json (transformers) or open_clip config of `repo_id` is in the local HF cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "open_clip_config.json"):
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=_hub_cache())
        if isinstance(hit, str):
            return True
    return False


def _not_cached(name: str, flag: str) -> ThresherError:
    return ThresherError(
        f"{flag} {name}: offline (--offline / HF_HUB_OFFLINE=1) and not in the Hugging Face cache "
        f"({_hub_cache()}); download it where there is a network (`hf download {name}`), copy "
        "the cache here, or pass a local folder. `thresher models` lists what is cached."
    )


def resolve_model(name: str, flag: str = "--model") -> str:
    """A local folder's absolute path, or the hub name (checked against the cache when offline)."""
    local = Path(name).expanduser()
    if local.exists():
        return str(local.resolve())
    if _looks_local(name):
        raise ThresherError(f"{flag} {name}: no such folder")
    if offline() and not is_cached(name):
        raise _not_cached(name, flag)
    return name


def check_open_clip(name: str) -> None:
    """An open_clip `hf-hub:org/repo` name is fine online; offline it must be cached."""
    if name.startswith(OPEN_CLIP_HUB) and offline():
        repo = name[len(OPEN_CLIP_HUB) :]
        if not is_cached(repo):
            raise _not_cached(name, "--encoder")


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return "~/.cache/huggingface/hub"


@dataclass(frozen=True)
class CachedModel:
    kind: str  # transformers | open_clip | clip-checkpoint
    name: str  # what to pass: a hub name, an hf-hub: name, or a file path
    size_bytes: int
    path: str


def _kind(snapshot: Path) -> str:
    if (snapshot / "open_clip_config.json").exists():
        return "open_clip"
    return "transformers" if (snapshot / "config.json").exists() else "other"


def cached_models() -> list[CachedModel]:
    """Models in the Hugging Face cache, and open_clip checkpoint files in its own cache folder."""
    out: list[CachedModel] = []
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(_hub_cache())
    except Exception:  # no cache yet, or an unreadable one: nothing to list
        info = None
    for repo in sorted(info.repos if info else [], key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        snap = Path(max(repo.revisions, key=lambda r: r.last_modified).snapshot_path)
        kind = _kind(snap)
        name = OPEN_CLIP_HUB + repo.repo_id if kind == "open_clip" else repo.repo_id
        out.append(CachedModel(kind, name, repo.size_on_disk, str(snap)))
    clip_dir = Path(os.environ.get("OPEN_CLIP_CACHE", "~/.cache/clip")).expanduser()
    for f in sorted(clip_dir.glob("*.pt")) if clip_dir.is_dir() else []:
        out.append(CachedModel("clip-checkpoint", str(f), f.stat().st_size, str(f)))
    return out
