"""Fixtures for the fine-tune tests: tiny offline VLMs, small images and hand-written manifests."""

from __future__ import annotations

import json

import pytest

from tests.helpers.datasets import llamafactory_sharegpt
from tests.helpers.tiny_vlm import make_images, tiny_vlm


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def qwen_model():
    return tiny_vlm("qwen2_vl")


@pytest.fixture(scope="session")
def idefics_model():
    return tiny_vlm("idefics3")


@pytest.fixture(scope="session")
def llava_model():
    return tiny_vlm("llava")


@pytest.fixture(scope="session")
def qwen25_model():
    return tiny_vlm("qwen2_5_vl")


def llava_records(images: list[str]) -> list[dict]:
    """Two single-turn samples and one two-turn sample, LLaVA style, images relative."""
    return [
        {
            "id": "s0",
            "image": images[0],
            "conversations": [
                {"from": "human", "value": "<image>\nIs there a red square?"},
                {"from": "gpt", "value": "yes"},
                {"from": "human", "value": "How many circles?"},
                {"from": "gpt", "value": "two"},
            ],
        },
        {
            "id": "s1",
            "image": images[1],
            "conversations": [
                {"from": "human", "value": "What colour is it?\n<image>"},
                {"from": "gpt", "value": "green"},
            ],
        },
        {
            "id": "s2",
            "image": images[2],
            "conversations": [
                {"from": "human", "value": "<image>Which option is correct? A B C D"},
                {"from": "gpt", "value": "B"},
            ],
        },
    ]


@pytest.fixture
def manifest_dir(tmp_path):
    """A folder with three images (img0..img2.png) and llava/swift/sharegpt manifests of them."""
    folder = tmp_path / "export"
    make_images(folder, 3)
    images = [f"img{i}.png" for i in range(3)]
    recs = llava_records(images)
    (folder / "train.llava.json").write_text(json.dumps(recs))
    role = {"human": "user", "gpt": "assistant"}
    swift = [
        {
            "id": r["id"],
            "messages": [
                {"role": role[t["from"]], "content": t["value"]} for t in r["conversations"]
            ],
            "images": [r["image"]],
        }
        for r in recs
    ]
    (folder / "train.swift.jsonl").write_text("\n".join(json.dumps(s) for s in swift) + "\n")
    (folder / "train.sharegpt.json").write_text(json.dumps(swift))
    (folder / "dataset_info.json").write_text(
        json.dumps({"thresher_train": llamafactory_sharegpt("train.sharegpt.json")})
    )
    return folder
