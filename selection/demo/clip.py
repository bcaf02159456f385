"""The demo's CLIP: a small open_clip model trained contrastively on the demo world when the demo
is built, so that OFA's demo clusters mean something offline and encoding takes seconds.

A random-weight ViT-B-32 (what the demo used before) costs minutes of CPU to encode 3,000 images
and gives clusters that follow the question templates and nothing drawn. This model is about 5M
parameters (48x48 images, 8x8 patches, 2 + 2 transformer layers, 64-d embeddings). Its text
tower stays at its seeded random start (a random text tower already tells the demo's question
templates apart); its image tower is trained for a fixed number of steps to meet that tower's
embedding of the scene's caption ("red circle top left, word cat"), contrastively, as CLIP. Fixed
steps and a fixed seed, not a time budget, so two builds train the same way. It is cached in the
workspace next to the demo dataset it was trained on and reused until that dataset changes. Real
users keep ViT-B-32 with OpenAI weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store.errors import ThresherError

log = logging.getLogger(__name__)

NAME = "demo-clip"
VERSION = 2  # bump when the recipe changes, so a cached model is retrained
CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 48, "layers": 2, "width": 96, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 3, "layers": 2},
}
STEPS, BATCH, LR, SEED = 150, 128, 2e-3, 0
_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OpenAI preprocessing, as encode uses
_STD = (0.26862954, 0.26130258, 0.27577711)


def files(folder: Path) -> tuple[Path, Path]:
    """(model-config JSON, checkpoint) inside a demo-CLIP folder: pass them to OFA as
    `--encoder CONFIG --pretrained CHECKPOINT`."""
    return folder / f"{NAME}.json", folder / f"{NAME}.pt"


def scenes(demo_json: str | os.PathLike[str]) -> list[tuple[dict, str, dict]]:
    """(sample, task, scene) of every single-image sample of a demo build, its scene replayed from
    the build's seed (text-only and two-image samples are left out)."""
    from store.demo import scene_of

    demo_json = Path(demo_json)
    build = json.loads((demo_json.parent / "build.json").read_text())
    mix = {t: w for t, w in build["mix"]}
    out = []
    for sample in json.loads(demo_json.read_text(encoding="utf-8")):
        if not isinstance(sample.get("image"), str):
            continue
        task, scene = scene_of(build["seed"], int(sample["id"].rsplit("-", 1)[1]), mix)
        assert scene is not None  # a single-image sample has a scene
        out.append((sample, task, scene))
    return out


def _pairs(demo_json: Path) -> tuple[list[Path], list[str]]:
    """Every image of the demo build with the caption of the scene drawn in it."""
    from store.demo import caption

    found = scenes(demo_json)
    if len(found) < 2:
        raise ThresherError(f"{demo_json}: fewer than two single-image samples to train on")
    return [demo_json.parent / s["image"] for s, _, _ in found], [caption(c) for _, _, c in found]


def _load_images(paths: list[Path], size: int):
    import numpy as np
    import torch
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            out[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _fingerprint(demo_json: Path, steps: int) -> dict:
    digest = hashlib.sha256(demo_json.read_bytes()).hexdigest()
    return {"version": VERSION, "data_sha256": digest, "steps": steps, "config": CONFIG}


def train_demo_clip(
    demo_json: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    steps: int = STEPS,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Train (or reuse) the demo CLIP for the demo build at `demo_json`; return its folder.

    `progress(step, steps, loss)` is called after every step. A folder trained on the same data
    with the same recipe is reused as it is.
    """
    import open_clip
    import torch
    import torch.nn.functional as F

    demo_json, out = Path(demo_json), Path(out_dir)
    cfg_path, ckpt = files(out)
    marker = out / "build.json"
    want = _fingerprint(demo_json, steps)
    if ckpt.is_file() and marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                return out
        except ValueError:
            pass  # unreadable marker: retrain
    images, captions = _pairs(demo_json)
    x = _load_images(images, CONFIG["vision_cfg"]["image_size"])
    out.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(CONFIG, indent=1) + "\n")
    open_clip.add_model_config(str(cfg_path))
    tokens = open_clip.get_tokenizer(NAME)(captions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # open_clip warns "no pretrained weights": we train them here
        try:
            model = open_clip.create_model(NAME, pretrained=None)
        finally:
            root.setLevel(level)
        gen = torch.Generator().manual_seed(SEED)
        # Locked text: the text tower keeps its random start and only the image tower learns to
        # meet it. A random text tower already tells the demo's question templates apart (task
        # purity ~0.87 at 300 samples); training it on captions taught it colours and shapes
        # but lost the tasks (0.51). Its caption embeddings are fixed, so they are computed once.
        model.eval()
        with torch.no_grad():
            text = torch.cat(
                [
                    F.normalize(model.encode_text(tokens[s : s + 256]), dim=-1)
                    for s in range(0, len(tokens), 256)
                ]
            )
        model.visual.train()
        params = [*model.visual.parameters(), model.logit_scale]
        opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, LR, total_steps=max(1, steps), pct_start=0.1
        )  # steps=0 saves the random start: the untrained baseline of the same architecture
        batch = min(BATCH, len(x))
        for step in range(1, steps + 1):
            idx = torch.randperm(len(x), generator=gen)[:batch]
            img = F.normalize(model.encode_image(x[idx]), dim=-1)
            logits = model.logit_scale.exp() * img @ text[idx].T
            target = torch.arange(len(idx))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)  # at most 100, as CLIP
            if progress is not None:
                progress(step, steps, float(loss.detach()))
    tmp = ckpt.with_name(f".{ckpt.name}.tmp-{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, ckpt)
    marker.write_text(json.dumps(want) + "\n")
    log.info("demo CLIP trained on %d images for %d steps: %s", len(x), steps, out)
    return out


def demo_labels(found: list[tuple[dict, str, dict]]) -> dict[str, list[str]]:
    """The demo's own labels of `scenes()`, in order: task family and the dominant colour and
    shape of each scene (what cluster purity is scored against)."""
    from store.demo import dominant

    return {
        "task": [task for _, task, _ in found],
        "colour": [dominant(scene, "colour") for _, _, scene in found],
        "shape": [dominant(scene, "shape") for _, _, scene in found],
    }


def purity(clusters, labels) -> float:
    """Cluster purity: the share of samples whose label is their cluster's most common one."""
    import numpy as np

    clusters, labels = np.asarray(clusters), np.asarray(labels)
    hits = 0
    for c in np.unique(clusters):
        _, counts = np.unique(labels[clusters == c], return_counts=True)
        hits += int(counts.max())
    return hits / max(1, len(clusters))


def demo_purity(demo_json: str | os.PathLike[str], encode_cfg: Any, k: int = 20) -> dict:
    """Encode a demo build's single-image samples as OFA does (image ‖ question, Eq. 2), cluster
    them with k-means (seed 0) and score the clusters' purity against the demo's own labels."""
    import numpy as np

    from selection.ofa.encode import encode_rows, load_encoder
    from selection.ofa.kmeans import kmeans

    demo_json = Path(demo_json)
    found = scenes(demo_json)
    samples = [sample for sample, _, _ in found]
    emb, reasons = encode_rows(
        load_encoder(encode_cfg),
        [[str(demo_json.parent / s["image"])] for s in samples],
        [s["conversations"][0]["value"] for s in samples],
        [[] for _ in samples],
        batch_size=64,
        workers=1,
    )
    if any(reasons):
        raise ThresherError(f"{demo_json}: some demo images could not be encoded: {set(reasons)}")
    x = emb.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clusters = kmeans(x, k, iterations=30, seed=0).labels
    return {key: purity(clusters, labels) for key, labels in demo_labels(found).items()}
