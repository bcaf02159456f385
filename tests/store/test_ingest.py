"""Every input format ingests into the documented sample columns (tiny files, real PNGs)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store.datasets import flag_counts, get_dataset, list_datasets, sample_count
from store.errors import IngestError, NotFound
from store.ingest import IngestProgress, ingest
from tests.helpers.datasets import llamafactory_sharegpt
from tests.store.ingest_helpers import llava_row, png, samples, write_json, write_jsonl


@pytest.fixture
def images(tmp_path):
    data = tmp_path / "data"
    png(data / "img" / "a.png", "red")
    png(data / "img" / "b.png", "blue")
    return data


def test_llava_columns(catalog, images):
    rows = [
        llava_row(0, "img/a.png", task="short", source="coco", score=0.5),
        llava_row(1, ["img/a.png", "img/b.png"]),
        llava_row(2, None),  # text-only
        {
            "id": "multi",
            "image": "img/b.png",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "What is this?\n<image>"},
                {"from": "gpt", "value": "A square."},
                {"from": "human", "value": "Colour?"},
                {"from": "gpt", "value": "Blue."},
            ],
        },
    ]
    path = write_json(images / "train.json", rows)
    report = ingest(catalog, path)
    assert (report.dataset, report.format, report.n_samples, report.n_new) == (
        "train",
        "llava",
        4,
        4,
    )
    assert report.flags == {} and report.n_flagged == 0
    got = samples(catalog, "train")
    root = str(images.resolve())
    first = got[0]
    assert first["orig_id"] == "s0" and first["position"] == 0
    assert first["images"] == [f"{root}/img/a.png"] and first["images_raw"] == ["img/a.png"]
    assert json.loads(first["conversation"]) == [
        {"role": "user", "content": "<image>\nQuestion 0?"},
        {"role": "assistant", "content": "Red"},
    ]
    assert (first["question"], first["answer"]) == ("Question 0?", "Red")
    assert (first["n_image_tokens"], first["n_turns"], first["task"]) == (1, 1, "short")
    assert json.loads(first["extra"]) == {"source": "coco", "score": 0.5}
    assert got[1]["n_image_tokens"] == 2 and len(got[1]["images"]) == 2
    assert got[2]["images"] == [] and got[2]["flags"] == [] and got[2]["extra"] is None
    multi = got[3]
    assert [t["role"] for t in json.loads(multi["conversation"])] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert (multi["question"], multi["answer"], multi["n_turns"]) == (
        "What is this?",
        "A square.",
        2,
    )
    ids = [s["sample_id"] for s in got]
    ds = get_dataset(catalog, "train")
    assert ids == [ds.dataset_id * 2**32 + i for i in range(4)]
    assert ds.image_root == root and ds.source_path == str(path.resolve())
    assert ds.n_samples == 4 and ds.options["check_images"] == "header"


def test_llava_as_json_lines_and_image_root(catalog, tmp_path, images):
    path = write_jsonl(tmp_path / "elsewhere" / "rows.jsonl", [llava_row(0), llava_row(1)])
    report = ingest(catalog, path, name="lines", fmt="llava", image_root=images)
    assert report.n_samples == 2 and report.flags == {}
    assert samples(catalog, "lines")[0]["images"] == [str(images.resolve() / "img" / "a.png")]
    # Without --image-root the paths resolve next to the file, where there are no images.
    again = ingest(catalog, path, name="lines-here", fmt="llava")
    assert again.flags == {"missing_image": 2}


def test_swift_jsonl(catalog, images):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "<image><image>Compare them."},
                {"role": "assistant", "content": "Same shape."},
            ],
            "images": ["img/a.png", str(images / "img" / "b.png")],
            "objects": {"ref": []},
        },
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        },
    ]
    report = ingest(catalog, write_jsonl(images / "swift.jsonl", rows))
    assert report.format == "swift" and report.flags == {}
    got = samples(catalog, "swift")
    assert [s["orig_id"] for s in got] == ["#0", "#1"]  # no id field: the row number
    assert got[0]["question"] == "Compare them." and got[0]["n_image_tokens"] == 2
    assert got[0]["images"][1] == str(images / "img" / "b.png")  # absolute paths kept
    assert json.loads(got[0]["extra"]) == {"objects": {"ref": []}}
    assert json.loads(got[0]["conversation"])[0] == {
        "role": "system",
        "content": "You are helpful.",
    }


def _mllm_demo(images, **entry_extra):
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<image>Who is this?"},
                {"role": "assistant", "content": "A cat."},
            ],
            "images": ["img/a.png"],
        }
    ]
    write_json(images / "mllm.json", rows)
    return {**llamafactory_sharegpt("mllm.json"), **entry_extra}


def test_sharegpt_via_dataset_info(catalog, images):
    info = {"mllm_demo": _mllm_demo(images)}
    write_json(images / "dataset_info.json", info)
    report = ingest(catalog, images / "dataset_info.json")
    assert (report.dataset, report.format, report.n_samples) == ("mllm_demo", "sharegpt", 1)
    assert report.flags == {}
    got = samples(catalog, "mllm_demo")[0]
    assert (got["question"], got["answer"]) == ("Who is this?", "A cat.")
    ds = get_dataset(catalog, "mllm_demo")
    assert ds.options["dataset_key"] == "mllm_demo" and ds.options["tags"]["role_tag"] == "role"
    # The data file itself, with dataset_info.json beside it, reads the same way.
    again = ingest(catalog, images / "mllm.json", name="by-file")
    assert again.format == "sharegpt" and again.fingerprint == report.fingerprint
    # And so does the folder that holds dataset_info.json.
    assert ingest(catalog, images, name="by-dir").fingerprint == report.fingerprint


def test_sharegpt_default_tags_system_column_and_key_choice(catalog, images):
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "<image>Shape?"},
                {"from": "gpt", "value": "Circle"},
            ],
            "pics": "img/b.png",
            "sys": "Answer in one word.",
        }
    ]
    write_json(images / "shapes.json", rows)
    info = {
        "other": _mllm_demo(images),
        "shapes": {
            "file_name": "shapes.json",
            "formatting": "sharegpt",
            "columns": {"images": "pics", "system": "sys"},
        },
    }
    write_json(images / "dataset_info.json", info)
    with pytest.raises(IngestError, match="describes 2 datasets .*--dataset-key"):
        ingest(catalog, images / "dataset_info.json")
    report = ingest(catalog, images / "dataset_info.json", dataset_key="shapes")
    assert report.dataset == "shapes" and report.flags == {}
    got = samples(catalog, "shapes")[0]
    assert json.loads(got["conversation"])[0] == {
        "role": "system",
        "content": "Answer in one word.",
    }
    assert got["images_raw"] == ["img/b.png"] and got["extra"] is None


def test_table_parquet_with_mapping(catalog, images):
    table = pa.table(
        {
            "uid": ["q1", "q2", "q3"],
            "img": ["img/a.png", "img/b.png", None],
            "prompt": ["What colour?", "<image> Which shape?", "Text only?"],
            "response": ["red", "square", "yes"],
            "family": ["short", "mc", "yesno"],
            "difficulty": [1, 2, 3],
        }
    )
    path = images / "table.parquet"
    pq.write_table(table, path)
    mapping = {
        "id": "uid",
        "image": "img",
        "question": "prompt",
        "answer": "response",
        "task": "family",
    }
    report = ingest(catalog, path, mapping=mapping)
    assert report.format == "table" and report.flags == {}
    got = samples(catalog, "table")
    assert [s["orig_id"] for s in got] == ["q1", "q2", "q3"]
    # A plain question gets the LLaVA image token so exports satisfy images == tokens.
    assert json.loads(got[0]["conversation"])[0]["content"] == "<image>\nWhat colour?"
    assert json.loads(got[1]["conversation"])[0]["content"] == "<image> Which shape?"
    assert [s["question"] for s in got] == ["What colour?", "Which shape?", "Text only?"]
    assert [s["task"] for s in got] == ["short", "mc", "yesno"]
    assert json.loads(got[2]["extra"]) == {"difficulty": 3} and got[2]["images"] == []
    assert get_dataset(catalog, "table").options["mapping"] == mapping


def test_table_jsonl_conversation_column(catalog, images):
    rows = [
        {
            "key": 7,
            "turns": [
                {"role": "user", "content": "<image>Hi"},
                {"role": "assistant", "content": "Hello"},
            ],
            "pic": ["img/a.png"],
        },
        {
            "key": 8,
            "turns": json.dumps(
                [{"from": "human", "value": "Yo"}, {"from": "gpt", "value": "Hey"}]
            ),
        },
    ]
    path = write_jsonl(images / "conv.jsonl", rows)
    report = ingest(
        catalog, path, fmt="table", mapping={"id": "key", "conversation": "turns", "image": "pic"}
    )
    assert report.flags == {}
    got = samples(catalog, "conv")
    assert [s["orig_id"] for s in got] == ["7", "8"]
    assert [(s["question"], s["answer"]) for s in got] == [("Hi", "Hello"), ("Yo", "Hey")]


def test_table_needs_a_usable_mapping(catalog, images):
    path = write_jsonl(images / "t.jsonl", [{"q": "a", "a": "b"}])
    with pytest.raises(IngestError, match="needs a column mapping"):
        ingest(catalog, path, fmt="table")
    with pytest.raises(IngestError, match="neither a conversation column nor both"):
        ingest(catalog, path, fmt="table", mapping={"question": "q"})
    with pytest.raises(IngestError, match="unknown mapping key"):
        ingest(catalog, path, fmt="table", mapping={"prompt": "q"})
    with pytest.raises(IngestError, match="no row has the mapped column.*answr"):
        ingest(catalog, path, fmt="table", mapping={"question": "q", "answer": "answr"})


def test_check_image_modes(catalog, images):
    (images / "img" / "zero.png").write_bytes(b"")
    (images / "img" / "text.png").write_bytes(b"this is not an image")
    good = (images / "img" / "a.png").read_bytes()
    # A PNG whose header is intact but whose pixel data is cut short.
    (images / "img" / "cut.png").write_bytes(good[: len(good) // 2])
    png(images / "img" / "big.png", "green", (64, 64))
    big = (images / "img" / "big.png").read_bytes()
    (images / "img" / "cut.png").write_bytes(big[: len(big) - 30])
    rows = [
        llava_row(i, f"img/{n}")
        for i, n in enumerate(["zero.png", "text.png", "cut.png", "gone.png", "a.png"])
    ]
    path = write_json(images / "checks.json", rows)

    def flags(mode):
        ingest(catalog, path, name=mode, check_images=mode)
        return [s["flags"] for s in samples(catalog, mode)]

    assert flags("none") == [[], [], [], [], []]
    assert flags("exists") == [["corrupt_image"], [], [], ["missing_image"], []]
    assert flags("header") == [["corrupt_image"], ["corrupt_image"], [], ["missing_image"], []]
    assert flags("decode") == [["corrupt_image"]] * 3 + [["missing_image"], []]


def test_datasets_queries(catalog, images):
    assert list_datasets(catalog) == []
    ingest(catalog, write_json(images / "one.json", [llava_row(0), llava_row(1, answer="")]))
    ingest(catalog, write_json(images / "two.json", [llava_row(0, "img/none.png")]))
    names = [d.name for d in list_datasets(catalog)]
    assert names == ["one", "two"]
    one, two = (get_dataset(catalog, n) for n in names)
    assert get_dataset(catalog, two.dataset_id).name == "two"
    assert sample_count(catalog, one.dataset_id) == 2 and one.n_flagged == 1
    assert flag_counts(catalog) == {
        one.dataset_id: {"empty_answer": 1},
        two.dataset_id: {"missing_image": 1},
    }
    assert flag_counts(catalog, two.dataset_id) == {two.dataset_id: {"missing_image": 1}}
    with pytest.raises(NotFound, match="no dataset 'three'.*known: one, two"):
        get_dataset(catalog, "three")


def test_progress_events(catalog, images, monkeypatch):
    import store.ingest.core as core

    monkeypatch.setattr(core, "BATCH", 8)
    path = write_json(images / "p.json", [llava_row(i) for i in range(40)])
    events: list[IngestProgress] = []
    ingest(catalog, path, progress=events.append)
    reads = [e for e in events if e.phase == "read"]
    assert [e.samples for e in reads] == sorted(e.samples for e in reads)
    assert reads[-1].done == reads[-1].total == path.stat().st_size and reads[-1].samples == 40
    assert [e.phase for e in events[-2:]] == ["write", "write"] and events[-1].done == 40


def test_map_renames_fields_of_conversation_formats(catalog, images):
    rows = [{"uid": "a", "images": ["img/a.png"], "conversations": llava_row(0)["conversations"]}]
    report = ingest(
        catalog,
        write_json(images / "renamed.json", rows),
        fmt="llava",
        mapping={"id": "uid", "image": "images"},
    )
    got = samples(catalog, "renamed")[0]
    assert report.flags == {} and got["orig_id"] == "a" and got["extra"] is None
    assert got["images_raw"] == ["img/a.png"]
