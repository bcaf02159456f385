"""The demo generator: deterministic bytes, well-formed samples, exact answers in each family."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from PIL import Image

from store.demo import DEFAULT_MIX, build_demo


def _digest(folder):
    """sha256 of demo.json and of every image, by name."""
    out = {"demo.json": hashlib.sha256((folder / "demo.json").read_bytes()).hexdigest()}
    for p in sorted((folder / "images").glob("*.png")):
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = build_demo(tmp_path / "a", n=80, seed=3)
    b = build_demo(tmp_path / "b", n=80, seed=3, workers=2, chunk=16)  # a pool gives the same bytes
    c = build_demo(tmp_path / "c", n=80, seed=4)
    da, db, dc = _digest(a.parent), _digest(b.parent), _digest(c.parent)
    assert da == db
    assert len(da) > 70  # images were written (text-only samples have none)
    assert da["demo.json"] != dc["demo.json"]
    # Same file names are not enough: a different seed draws different images.
    assert set(da.values()) & set(dc.values()) == set()


def test_different_mix_gives_a_different_dataset(tmp_path):
    a = json.loads(build_demo(tmp_path / "a", n=60, seed=0).read_text())
    b = json.loads(
        build_demo(tmp_path / "b", n=60, seed=0, mix={"count": 1.0, "compare": 0.5}).read_text()
    )
    assert {s["task"] for s in b} == {"count", "compare"}
    assert a != b


def test_samples_are_well_formed_llava(tmp_path):
    path = build_demo(tmp_path / "d", n=400, seed=0, mix={**DEFAULT_MIX, "compare": 0.05})
    samples = json.loads(path.read_text())
    assert len(samples) == 400
    assert len({s["id"] for s in samples}) == 400
    assert {s["task"] for s in samples} == set(DEFAULT_MIX) | {"compare"}
    for s in samples:
        conv = s["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
        images = (
            [] if "image" not in s else [s["image"]] if isinstance(s["image"], str) else s["image"]
        )
        tokens = sum(t["value"].count("<image>") for t in conv)
        assert tokens == len(images), s["id"]
        assert all("<image>" not in t["value"] for t in conv[1:])  # only in the first turn
        for rel in images:
            with Image.open(path.parent / rel) as im:
                assert im.size == (224, 224) and im.format == "PNG"
        answers = [t["value"] for t in conv[1::2]]
        task = s["task"]
        if task == "text":
            assert not images
        elif task == "multiturn":
            assert len(conv) in (4, 6)
        elif task == "compare":
            assert len(images) == 2 and answers[0] in {"first", "second", "same"}
        elif task == "yesno":
            assert answers[0] in {"Yes", "No"}
        elif task == "count":
            assert re.fullmatch(r"[0-9]", answers[0])
        elif task == "mc":
            letter = answers[0]
            options = dict(re.findall(r"^([A-D])\. (.+)$", conv[0]["value"], flags=re.M))
            assert set(options) == set("ABCD") and letter in options
        elif task == "short":
            assert re.fullmatch(r"[a-z]+", answers[0])


def test_counting_answers_match_the_pixels(tmp_path):
    """A count of coloured shapes checked against the drawn image: the answers are exact."""
    from store.demo import COLOURS

    samples = json.loads(build_demo(tmp_path / "d", n=300, seed=1, mix={"count": 1}).read_text())
    checked = 0
    for s in samples:
        m = re.match(
            r"(?:<image>\n)?How many (\w+) shapes are there", s["conversations"][0]["value"]
        )
        if not m:
            continue
        rgb = COLOURS[m.group(1)]
        with Image.open(tmp_path / "d" / s["image"]) as im:
            mask = Image.eval(im.convert("RGB"), lambda v: v)  # copy
            px = mask.load()
            hits = [(x, y) for x in range(0, 224, 2) for y in range(0, 224, 2) if px[x, y] == rgb]
        blobs = _blobs(set(hits))
        assert blobs == int(s["conversations"][1]["value"]), s["id"]
        checked += 1
    assert checked > 30


def _blobs(points):
    """Connected components on a 2-px grid (shapes never touch: one per grid cell)."""
    seen, count = set(), 0
    for p in points:
        if p in seen:
            continue
        count += 1
        stack = [p]
        while stack:
            x, y = stack.pop()
            if (x, y) in seen:
                continue
            seen.add((x, y))
            for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2), (2, 2), (-2, -2), (2, -2), (-2, 2)):
                q = (x + dx, y + dy)
                if q in points and q not in seen:
                    stack.append(q)
    return count


def test_rebuild_is_reused_and_bad_mix_is_refused(tmp_path):
    path = build_demo(tmp_path / "d", n=20, seed=0)
    mtime = path.stat().st_mtime_ns
    assert build_demo(tmp_path / "d", n=20, seed=0) == path
    assert path.stat().st_mtime_ns == mtime
    first_image = next((tmp_path / "d" / "images").glob("*.png"))
    png = first_image.read_bytes()
    first_image.unlink()  # a damaged folder is rebuilt, not reused
    build_demo(tmp_path / "d", n=20, seed=0)
    assert first_image.read_bytes() == png
    build_demo(tmp_path / "d", n=25, seed=0)
    assert len(json.loads(path.read_text())) == 25
    with pytest.raises(ValueError, match="unknown demo task"):
        build_demo(tmp_path / "e", n=5, mix={"poetry": 1.0})
