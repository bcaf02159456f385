"""OFA encoding: a frozen open_clip model turns (first image, first question) into one L2-normalised vector.

Feature (`normalize`, see docs/ofa.md):
  concat (default, the paper's Eq. 2): normalise([image ; text]), the raw CLIP embeddings
      concatenated, then L2-normalised; the modality with the larger raw norm weighs more.
  per-tower: [normalise(image) ; normalise(text)] / sqrt(2): each tower normalised first, so
      both weigh the same, then the concatenation (dividing by sqrt(2) is that normalisation).
Either way the image-text cosine (CLIP score) is the cosine of the stored vector's two halves.
Multi-image samples use their first image. Samples flagged missing/corrupt, without an image,
or whose first image fails to decode get a zero vector and are reported as excluded.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selection.ofa.config import EncodeConfig
from store.errors import ThresherError

log = logging.getLogger(__name__)

EXCLUDING_FLAGS = ("missing_image", "corrupt_image")
_IMAGE_TOKEN = re.compile(r"\s*<image>\s*")


@dataclass
class Encoder:
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    image_size: int
    dim: int  # concatenated feature width (2 x the CLIP embedding width)
    name: str
    pretrained: str
    normalize: str = "concat"  # EncodeConfig.normalize


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ThresherError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def load_encoder(cfg: EncodeConfig) -> Encoder:
    """Build the open_clip model named by cfg (a model name or a model-config JSON path), frozen, in eval mode."""
    import open_clip

    name = cfg.encoder
    cfg_path = Path(name).expanduser()
    if name.endswith(".json"):
        if not cfg_path.is_file():
            raise ThresherError(f"--encoder {name}: no such model-config file")
        open_clip.add_model_config(str(cfg_path))
        name = cfg_path.stem
    elif name.startswith("hf-hub:"):  # SigLIP and others: config and weights from one hub repo
        from selection.models.resolve import check_open_clip

        check_open_clip(name)
    elif name not in open_clip.list_models():
        raise ThresherError(
            f"--encoder {name}: not an open_clip model; see open_clip.list_models(), name a hub "
            "repo as hf-hub:ORG/NAME (e.g. hf-hub:timm/ViT-B-16-SigLIP), or pass a model-config "
            ".json"
        )
    pretrained: str | None = cfg.pretrained
    if name.startswith("hf-hub:"):
        pretrained = None  # the hub repo carries its weights
    elif pretrained is None or pretrained.lower() == "none":
        warnings.warn(
            f"encoder {name} has random weights (--pretrained none): embeddings are for tests only",
            stacklevel=2,
        )
        pretrained = None
    elif not Path(pretrained).expanduser().is_file() and pretrained not in (
        open_clip.list_pretrained_tags_by_model(name)
    ):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none known"
        raise ThresherError(
            f"--pretrained {pretrained}: neither a file nor a tag of {name} (tags: {tags})"
        )
    import torch

    device = resolve_device(cfg.device)
    try:
        # Fixed seed: random-weight encoders (tests) are the same model in every process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device
            )
    except Exception as exc:  # a hub download that cannot happen offline, a bad checkpoint
        raise ThresherError(
            f"cannot load open_clip {name} with pretrained={pretrained}: {exc}. Offline? Pass a "
            "local checkpoint file with --pretrained PATH."
        ) from exc
    model.eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    width = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None
    if width is None:
        with torch.no_grad():
            width = int(model.encode_text(open_clip.get_tokenizer(name)(["x"]).to(device)).shape[1])
    return Encoder(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(name),
        device=device,
        image_size=size,
        dim=2 * width,
        name=cfg.encoder,
        pretrained=cfg.pretrained,
        normalize=cfg.normalize,
    )


def decode_image(path: str, preprocess, size: int):
    """Open, draft-decode (JPEG decodes at a reduced scale close to the model size) and preprocess."""
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        return preprocess(img.convert("RGB"))


def clean_question(text: str | None) -> str:
    return _IMAGE_TOKEN.sub(" ", text or "").strip()


def exclusion_reason(images: Sequence[str] | None, flags: Sequence[str] | None) -> str | None:
    for f in flags or ():
        if f in EXCLUDING_FLAGS:
            return f
    if not images:
        return "no_image"
    return None


def encode_rows(
    enc: Encoder,
    images: Sequence[Sequence[str] | None],
    questions: Sequence[str | None],
    flags: Sequence[Sequence[str] | None],
    *,
    batch_size: int,
    workers: int,
    on_batch: Callable[[int], None] | None = None,
    logger: logging.Logger | None = None,
) -> tuple[np.ndarray, list[str | None]]:
    """Embeddings (n, dim) float16 and, per row, the reason it was excluded (None = encoded).

    Decoding runs on a thread pool kept `2 * batch_size` rows ahead of the model, so the
    forward pass is what the encoder waits on, not Pillow.
    """
    import torch

    n = len(questions)
    out = np.zeros((n, enc.dim), dtype=np.float16)
    reasons: list[str | None] = [exclusion_reason(images[i], flags[i]) for i in range(n)]
    # Rows to encode and the first image of each (exclusion_reason passes only rows with images).
    first_image = {i: imgs[0] for i in range(n) if reasons[i] is None and (imgs := images[i])}
    todo = list(first_image)

    def job(i: int):
        try:
            return decode_image(first_image[i], enc.preprocess, enc.image_size)
        except Exception as exc:  # unreadable file: report the sample, never crash the run
            return exc

    on_gpu = enc.device.startswith("cuda")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {}
        ahead = 0

        def fill(upto: int) -> None:
            nonlocal ahead
            while ahead < min(upto, len(todo)):
                futures[todo[ahead]] = pool.submit(job, todo[ahead])
                ahead += 1

        fill(2 * batch_size)
        done = 0
        for s in range(0, len(todo), batch_size):
            rows = todo[s : s + batch_size]
            fill(s + 3 * batch_size)
            tensors, ok_rows = [], []
            for i in rows:
                res = futures.pop(i).result()
                if isinstance(res, Exception):
                    reasons[i] = "decode_failed"
                    (logger or log).warning(
                        "sample row %d: cannot decode %s: %s", i, first_image[i], res
                    )
                else:
                    tensors.append(res)
                    ok_rows.append(i)
            if ok_rows:
                pix = torch.stack(tensors).to(enc.device, non_blocking=True)
                tok = enc.tokenizer([clean_question(questions[i]) for i in ok_rows]).to(enc.device)
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=torch.float16, enabled=on_gpu),
                ):
                    fi = enc.model.encode_image(pix).float()
                    ft = enc.model.encode_text(tok).float()
                feat = combine(fi, ft, enc.normalize)
                out[ok_rows] = feat.cpu().numpy().astype(np.float16)
            done += len(rows)
            if on_batch is not None:
                on_batch(done)
    return out, reasons


def combine(fi: Any, ft: Any, normalize: str) -> Any:
    """One feature per row from image and text embeddings (torch tensors), as `normalize` says."""
    import torch

    if normalize == "per-tower":
        fi = torch.nn.functional.normalize(fi, dim=-1)
        ft = torch.nn.functional.normalize(ft, dim=-1)
        return torch.cat([fi, ft], dim=1) / math.sqrt(2.0)
    return torch.nn.functional.normalize(torch.cat([fi, ft], dim=1), dim=-1)  # Eq. 2


def excluded_mask(emb: np.ndarray) -> np.ndarray:
    """Rows that were not encoded: their stored vector is all zeros (encoded rows have norm 1)."""
    out = np.empty(len(emb), dtype=bool)
    for s in range(0, len(emb), 65536):  # blockwise: an (n, d) boolean temporary would be large
        out[s : s + 65536] = ~np.any(emb[s : s + 65536] != 0, axis=1)
    return out


def clip_score(emb: np.ndarray) -> np.ndarray:
    """Image-text cosine from stored features: the cosine of the image half and the text half
    (both normalisations scale each half by a positive factor; 0 for rows not encoded)."""
    half = emb.shape[1] // 2
    out = np.empty(len(emb), dtype=np.float32)
    for s in range(0, len(emb), 65536):
        a = np.asarray(emb[s : s + 65536, :half], dtype=np.float32)
        b = np.asarray(emb[s : s + 65536, half:], dtype=np.float32)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        dots = np.einsum("ij,ij->i", a, b)
        out[s : s + len(a)] = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return out
