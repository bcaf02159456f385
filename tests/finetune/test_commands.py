"""`--print-command`: the ms-swift / LLaMA-Factory lines must point at the manifest and its registration."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from selection.finetune.commands import llamafactory_command, render, swift_command
from selection.finetune.config import FinetuneConfig
from store.export.read import read_manifest


def _opts(argv: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    key = None
    for a in argv:
        if a.startswith("--"):
            key = a[2:]
            out[key] = []
        elif key is not None:
            out[key].append(a)
    return out


def _printed_command(text: str, tool: str) -> list[str]:
    """The command line inside the printed text (continuations joined), as argv."""
    start = text.index(tool)
    return shlex.split(text[start:].replace("\\\n", " "))


def test_swift_command_trains_on_this_manifest_with_these_settings(manifest_dir):
    m = read_manifest(manifest_dir / "train.swift.jsonl")
    cfg = FinetuneConfig(
        manifest=str(m.path), model="/models/qwen", arch="qwen2_vl", lora_r=8, lora_alpha=16,
        learning_rate=2e-4, epochs=3, batch_size=2, grad_accum=4, max_steps=100,
    )  # fmt: skip
    text = render("swift", m, cfg, "out")
    # Relative image paths resolve from the manifest's folder, so the command runs there.
    assert text.splitlines()[0] == f"cd {manifest_dir}"
    argv = _printed_command(text, "swift sft")
    opts = _opts(argv)
    assert argv[:2] == ["swift", "sft"]
    assert Path(opts["dataset"][0]) == m.path and m.path.exists()
    assert opts["model"] == ["/models/qwen"] and opts["model_type"] == ["qwen2_vl"]
    assert opts["train_type"] == ["lora"] and opts["target_modules"] == ["all-linear"]
    assert opts["freeze_vit"] == ["true"]
    assert opts["lora_rank"] == ["8"] and opts["lora_alpha"] == ["16"]
    assert opts["learning_rate"] == ["0.0002"] and opts["num_train_epochs"] == ["3"]
    assert opts["per_device_train_batch_size"] == ["2"]
    assert opts["gradient_accumulation_steps"] == ["4"] and opts["max_steps"] == ["100"]
    # Every swift line is a real sample of the dataset the command names.
    lines = Path(opts["dataset"][0]).read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [e.id for e in m.examples]


def test_swift_command_keeps_user_targets(manifest_dir):
    m = read_manifest(manifest_dir / "train.swift.jsonl")
    cfg = FinetuneConfig(manifest=str(m.path), target_modules=["q_proj", "v_proj"])
    assert _opts(swift_command(m, cfg))["target_modules"] == ["q_proj", "v_proj"]


def test_llamafactory_uses_the_existing_registration(manifest_dir):
    m = read_manifest(manifest_dir / "train.sharegpt.json")
    cfg = FinetuneConfig(manifest=str(m.path), model="/m", arch="idefics3", epochs=2)
    text = render("llamafactory", m, cfg, "out")
    assert "already registers 'thresher_train'" in text
    opts = _opts(_printed_command(text, "llamafactory-cli"))
    info = json.loads((Path(opts["dataset_dir"][0]) / "dataset_info.json").read_text())
    entry = info[opts["dataset"][0]]
    assert Path(opts["dataset_dir"][0], entry["file_name"]) == m.path
    assert opts["template"] == ["idefics3"] and opts["finetuning_type"] == ["lora"]
    assert opts["lora_target"] == ["all"] and opts["freeze_vision_tower"] == ["true"]
    assert opts["num_train_epochs"] == ["2"] and opts["stage"] == ["sft"]


def test_llamafactory_registration_for_a_llava_manifest_reads_it_back(manifest_dir):
    m = read_manifest(manifest_dir / "train.llava.json")
    cfg = FinetuneConfig(manifest=str(m.path), model="/m", arch="qwen2_vl")
    text = render("llamafactory", m, cfg, "out")
    # The printed entry is valid JSON that, merged into dataset_info.json, registers the file...
    block = text[text.index("{") : text.index("llamafactory-cli")]
    printed = json.loads(block)
    argv, name, entry, registered = llamafactory_command(m, cfg)
    assert not registered and printed == {name: entry}
    opts = _opts(_printed_command(text, "llamafactory-cli"))
    assert opts["dataset"] == [name] and Path(opts["dataset_dir"][0]) == manifest_dir
    assert entry["file_name"] == m.path.name and entry["formatting"] == "sharegpt"
    # ...and its columns/tags describe the file: our own reader, told only that, agrees.
    info = json.loads((manifest_dir / "dataset_info.json").read_text())
    info[name] = entry
    (manifest_dir / "dataset_info.json").write_text(json.dumps(info))
    again = read_manifest(m.path)
    assert again.examples == m.examples
    raw = json.loads(m.path.read_text())[0]
    assert entry["columns"]["messages"] in raw and entry["columns"]["images"] in raw
    roles = {t[entry["tags"]["role_tag"]] for t in raw[entry["columns"]["messages"]]}
    assert roles == {entry["tags"]["user_tag"], entry["tags"]["assistant_tag"]}


def test_print_without_model_says_what_to_fill_in(manifest_dir):
    m = read_manifest(manifest_dir / "train.swift.jsonl")
    text = render("swift", m, FinetuneConfig(manifest=str(m.path)), "out")
    assert "Replace MODEL_PATH" in text and "--model MODEL_PATH" in text
