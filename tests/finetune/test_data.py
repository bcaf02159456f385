"""Manifests into examples, chat rendering, and the assistant-only label mask on real processors."""

from __future__ import annotations

import json

import pytest

from selection.finetune.data import (
    IGNORE_INDEX,
    Collator,
    Example,
    assistant_labels,
    chat_messages,
)
from store.errors import ThresherError
from store.export.read import read_manifest


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("train.llava.json", "llava"),
        ("train.swift.jsonl", "swift"),
        ("train.sharegpt.json", "sharegpt"),
    ],
)
def test_every_export_format_reads_to_the_same_examples(manifest_dir, name, fmt):
    m = read_manifest(manifest_dir / name)
    assert m.format == fmt
    assert [e.id for e in m.examples] == ["s0", "s1", "s2"]
    first = m.examples[0]
    assert first.turns == (
        ("user", "<image>\nIs there a red square?"),
        ("assistant", "yes"),
        ("user", "How many circles?"),
        ("assistant", "two"),
    )
    # Relative image paths resolve against the manifest's folder.
    assert first.images == (str(manifest_dir / "img0.png"),)


def test_sharegpt_tags_from_dataset_info_are_honoured(manifest_dir):
    recs = [
        {
            "conv": [{"who": "me", "text": "<image>Hi?"}, {"who": "bot", "text": "hello"}],
            "pics": ["img0.png"],
        }
    ]
    (manifest_dir / "odd.json").write_text(json.dumps(recs))
    info = json.loads((manifest_dir / "dataset_info.json").read_text())
    info["odd"] = {
        "file_name": "odd.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conv", "images": "pics"},
        "tags": {
            "role_tag": "who",
            "content_tag": "text",
            "user_tag": "me",
            "assistant_tag": "bot",
        },
    }
    (manifest_dir / "dataset_info.json").write_text(json.dumps(info))
    ex = read_manifest(manifest_dir / "odd.json").examples[0]
    assert ex.turns == (("user", "<image>Hi?"), ("assistant", "hello"))
    assert ex.images == (str(manifest_dir / "img0.png"),)


def test_bad_manifests_name_the_sample_and_the_fix(manifest_dir):
    good = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    (manifest_dir / "bad.jsonl").write_text(good + '\n{"messages": [\n')
    with pytest.raises(ThresherError, match=r"bad.jsonl: sample 1, line 2: .*invalid JSON"):
        read_manifest(manifest_dir / "bad.jsonl")
    (manifest_dir / "noimg.json").write_text(
        json.dumps(
            [
                {
                    "image": "nope.png",
                    "conversations": [
                        {"from": "human", "value": "<image>q"},
                        {"from": "gpt", "value": "a"},
                    ],
                }
            ]
        )
    )
    with pytest.raises(ThresherError, match=r"noimg.json\[0\]: image 'nope.png' not found"):
        read_manifest(manifest_dir / "noimg.json")
    (manifest_dir / "noans.json").write_text(
        json.dumps([{"conversations": [{"from": "human", "value": "q"}]}])
    )
    with pytest.raises(ThresherError, match="no assistant turn"):
        read_manifest(manifest_dir / "noans.json")
    (manifest_dir / "ids.txt").write_text("1\n2\n")
    with pytest.raises(ThresherError, match="id list"):
        read_manifest(manifest_dir / "ids.txt")


def test_image_tokens_become_image_parts_in_place():
    ex = Example("x", (("user", "Look: <image> and <image> now"), ("assistant", "ok")), ("a", "b"))
    msgs = chat_messages(ex)
    assert msgs[0]["content"] == [
        {"type": "text", "text": "Look:"},
        {"type": "image"},
        {"type": "text", "text": "and"},
        {"type": "image"},
        {"type": "text", "text": "now"},
    ]
    # No <image> token: images go first in the first user turn (LLaVA's convention).
    plain = chat_messages(Example("y", (("user", "q"), ("assistant", "a")), ("a",)))
    assert plain[0]["content"] == [{"type": "image"}, {"type": "text", "text": "q"}]


def _expected_mask(ids: list[int], prompt: list[int], end: int) -> list[int]:
    """Independent oracle: label = id from after each assistant prompt through its end marker."""
    labels = [IGNORE_INDEX] * len(ids)
    i = 0
    while i < len(ids):
        if ids[i : i + len(prompt)] == prompt:
            j = i + len(prompt)
            while ids[j] != end:
                labels[j] = ids[j]
                j += 1
            labels[j] = ids[j]
            i = j
        i += 1
    return labels


@pytest.mark.parametrize("arch", ["qwen2_vl", "idefics3"])
def test_assistant_only_label_mask_on_a_known_sample(manifest_dir, arch, qwen_model, idefics_model):
    from transformers import AutoProcessor

    model_dir = qwen_model if arch == "qwen2_vl" else idefics_model
    proc = AutoProcessor.from_pretrained(model_dir)
    tok = proc.tokenizer
    examples = read_manifest(manifest_dir / "train.llava.json").examples[:2]
    batch, skipped = Collator(proc, max_length=512)(examples)
    assert skipped == []
    ids, labels = batch["input_ids"], batch["labels"]
    if arch == "qwen2_vl":
        prompt = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        end = tok.convert_tokens_to_ids("<|im_end|>")
        answers = ["yes<|im_end|>two<|im_end|>", "green<|im_end|>"]
    else:
        prompt = tok("\nAssistant:", add_special_tokens=False)["input_ids"][1:]
        end = tok.convert_tokens_to_ids("<end_of_utterance>")
        answers = [" yes<end_of_utterance> two<end_of_utterance>", " green<end_of_utterance>"]
    for row in range(2):
        row_ids = ids[row].tolist()
        row_labels = labels[row].tolist()
        kept = [x for x in row_labels if x != IGNORE_INDEX]
        assert tok.decode(kept) == answers[row]
        real = batch["attention_mask"][row].bool().tolist()
        oracle = _expected_mask(
            [x if r else -1 for x, r in zip(row_ids, real, strict=True)], prompt, end
        )
        assert row_labels == oracle
        # Image tokens, the question and padding are never learned.
        image_id = getattr(proc, "image_token_id", None) or tok.convert_tokens_to_ids(
            proc.image_token
        )
        assert all(
            lab == IGNORE_INDEX for x, lab in zip(row_ids, row_labels, strict=True) if x == image_id
        )


def test_labels_survive_a_token_merged_across_the_boundary():
    # The segment's first token may merge with the prompt; the rest must still be found.
    ids = [5, 6, 77, 8, 9, 2]
    assert assistant_labels(ids, [[7, 8, 9]], "x") == [-100, -100, -100, 8, 9, -100]
    with pytest.raises(ThresherError, match="could not be located"):
        assistant_labels(ids, [[3, 4, 4]], "x")


def test_samples_over_max_length_are_skipped_not_cut(manifest_dir, qwen_model):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(qwen_model)
    examples = read_manifest(manifest_dir / "train.llava.json").examples
    batch, skipped = Collator(proc, max_length=40)(examples)
    assert skipped == ["s0"]  # the two-turn sample is the long one
    assert batch["input_ids"].shape[0] == 2
    none, all_skipped = Collator(proc, max_length=5)(examples)
    assert none is None and all_skipped == ["s0", "s1", "s2"]


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "idefics3", "llava"])
def test_one_batch_mixes_two_images_no_image_and_a_system_turn(tmp_path, arch, request):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tests.helpers.tiny_vlm import make_images

    imgs = make_images(tmp_path, 3)
    examples = [
        Example(
            "two", (("user", "<image><image>Same colour?"), ("assistant", "no")), (imgs[0], imgs[1])
        ),
        Example("none", (("user", "What is 2+2?"), ("assistant", "4")), ()),
        Example(
            "sys",
            (("system", "Be brief."), ("user", "<image>Colour?"), ("assistant", "blue")),
            (imgs[2],),
        ),
    ]
    fixture = {"qwen2_vl": "qwen_model", "qwen2_5_vl": "qwen25_model", "idefics3": "idefics_model"}
    model_dir = request.getfixturevalue(fixture.get(arch, "llava_model"))
    proc = AutoProcessor.from_pretrained(model_dir)
    batch, _ = Collator(proc, max_length=512)(examples)
    end = {"idefics3": "<end_of_utterance>", "llava": "</s>"}.get(arch, "<|im_end|>")
    learned = [
        proc.tokenizer.decode([x for x in row if x != IGNORE_INDEX]).strip()
        for row in batch["labels"].tolist()
    ]
    assert learned == [f"no{end}", f"4{end}", f"blue{end}"]
    loss = AutoModelForImageTextToText.from_pretrained(model_dir)(**batch).loss
    assert loss.isfinite()


def test_loss_false_turns_are_located_but_not_learned(tmp_path):
    ids = [1, 7, 8, 2, 3, 9, 9, 2]
    assert assistant_labels(ids, [[7, 8], [9, 9]], "x", no_loss=(0,)) == [
        -100, -100, -100, -100, -100, 9, 9, -100,
    ]  # fmt: skip
    rows = [
        {"id": "a", "messages": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1", "loss": False},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2", "loss": True},
        ]},
        {"id": "b", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "loss": False},
        ]},
        {"id": "c", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "loss": "no"},
        ]},
    ]  # fmt: skip
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(rows[0]) + "\n")
    assert read_manifest(good).examples[0].no_loss == (0,)
    for row, message in ((rows[1], "every assistant turn"), (rows[2], "use true or false")):
        bad = tmp_path / f"{row['id']}.jsonl"
        bad.write_text(json.dumps(row) + "\n")
        with pytest.raises(ThresherError, match=message):
            read_manifest(bad)


def test_collator_leaves_a_loss_false_answer_out_of_the_labels(manifest_dir, qwen_model):
    import dataclasses

    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(qwen_model)
    ex = read_manifest(manifest_dir / "train.llava.json").examples[0]  # answers: yes, two
    batch, _ = Collator(proc, max_length=512)([dataclasses.replace(ex, no_loss=(0,))])
    kept = [x for x in batch["labels"][0].tolist() if x != IGNORE_INDEX]
    assert proc.tokenizer.decode(kept) == "two<|im_end|>"
