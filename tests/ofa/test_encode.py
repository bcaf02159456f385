"""The encoder on real image files: parallel decode, normalised image||text features, bad images excluded."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from tests.ofa.conftest import tiny_encode


@pytest.fixture(scope="module")
def encoder():
    import torch

    from selection.ofa.encode import load_encoder

    torch.set_num_threads(2)
    with pytest.warns(UserWarning, match="random weights"):
        return load_encoder(tiny_encode())


def test_features_follow_eq2_and_bad_images_are_excluded(encoder, tmp_path):
    from selection.ofa.encode import clip_score, encode_rows, excluded_mask

    good = []
    for i, colour in enumerate(("red", "blue", "green")):
        p = tmp_path / f"g{i}.jpg"
        Image.new("RGB", (320, 240), colour).save(p)
        good.append(str(p))
    corrupt = tmp_path / "bad.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    images = [
        [good[0]],
        [str(corrupt)],
        [good[1], good[2]],
        [],
        [str(tmp_path / "gone.png")],
        [good[2]],
    ]
    flags = [[], [], [], [], ["missing_image"], []]
    questions = ["<image>\nWhat colour?", "q", "Compare <image> and <image>", "text only", "q", "x"]
    emb, reasons = encode_rows(encoder, images, questions, flags, batch_size=2, workers=2)
    assert reasons == [None, "decode_failed", None, "no_image", "missing_image", None]
    assert emb.dtype == np.float16 and emb.shape == (6, encoder.dim)
    assert excluded_mask(emb).tolist() == [False, True, False, True, True, False]
    half = encoder.dim // 2
    for i in (0, 2, 5):
        v = emb[i].astype(np.float32)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=2e-3)
    # a multi-image sample is encoded from its first image: same image half as a lone red image
    alone, _ = encode_rows(encoder, [[good[1]]], ["x"], [[]], batch_size=1, workers=1)

    # (a batch of one vs a batch of two: another product shape, so equal to rounding, not bits;
    # a different image would be far outside this tolerance)
    # Under Eq. 2 a half's length depends on the other tower's norm (another question here), so
    # the image halves are compared as directions.
    def direction(v):
        v = v.astype(np.float32)
        return v / np.linalg.norm(v)

    np.testing.assert_allclose(direction(alone[0, :half]), direction(emb[2, :half]), atol=3e-3)
    # the stored vector gives back CLIP's image-text cosine
    import torch

    from selection.ofa.encode import decode_image

    with torch.inference_mode():
        fi = encoder.model.encode_image(
            decode_image(good[0], encoder.preprocess, encoder.image_size)[None]
        )
        ft = encoder.model.encode_text(encoder.tokenizer(["What colour?"]))
    cos = torch.nn.functional.cosine_similarity(fi, ft).item()
    assert clip_score(emb)[0] == pytest.approx(cos, abs=5e-3)
    # Eq. 2 (the default): the raw embeddings concatenated, then L2-normalised, so each half
    # keeps its tower's share of the norm (float16 storage: equal to rounding)
    raw = torch.cat([fi, ft], dim=1)[0]
    eq2 = (raw / raw.norm()).numpy()
    np.testing.assert_allclose(emb[0].astype(np.float32), eq2, atol=2e-3)
    share = float(fi.norm() / raw.norm())
    assert np.linalg.norm(emb[0, :half].astype(np.float32)) == pytest.approx(share, abs=2e-3)
    # per-tower (the option): each half normalised first, so both halves weigh sqrt(1/2)
    import dataclasses

    per_tower = dataclasses.replace(encoder, normalize="per-tower")
    pt, _ = encode_rows(per_tower, images, questions, flags, batch_size=2, workers=2)
    for i in (0, 2, 5):
        v = pt[i].astype(np.float32)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=2e-3)
        assert np.linalg.norm(v[:half]) == pytest.approx(np.sqrt(0.5), abs=2e-3)
    assert clip_score(pt)[0] == pytest.approx(cos, abs=5e-3)


def test_random_weights_are_the_same_model_in_every_load(encoder):
    from selection.ofa.encode import load_encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_encoder(tiny_encode())
    for a, b in zip(encoder.model.parameters(), again.model.parameters(), strict=True):
        assert torch_equal(a, b)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_unknown_encoder_and_tag_name_the_fix():
    from selection.ofa.config import EncodeConfig
    from selection.ofa.encode import load_encoder
    from store.errors import ThresherError

    with pytest.raises(ThresherError, match="not an open_clip model"):
        load_encoder(EncodeConfig(encoder="No-Such-Net", pretrained="none"))
    with pytest.raises(ThresherError, match="neither a file nor a tag"):
        load_encoder(EncodeConfig(encoder="ViT-B-32", pretrained="no-such-tag"))


@pytest.mark.slow
def test_default_encoder_builds_offline_and_gives_1024_d(tmp_path):
    from selection.ofa.config import EncodeConfig
    from selection.ofa.encode import encode_rows, load_encoder

    p = tmp_path / "a.jpg"
    Image.new("RGB", (500, 375), "purple").save(p)
    with pytest.warns(UserWarning, match="random weights"):
        enc = load_encoder(EncodeConfig(pretrained="none", device="cpu"))  # ViT-B-32
    assert enc.dim == 1024 and enc.image_size == 224
    emb, reasons = encode_rows(
        enc, [[str(p)]], ["<image>\nWhat is it?"], [[]], batch_size=1, workers=1
    )
    assert reasons == [None] and emb.shape == (1, 1024)
    assert np.linalg.norm(emb[0].astype(np.float32)) == pytest.approx(1.0, abs=2e-3)
