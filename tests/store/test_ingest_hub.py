"""Hub-style data in: the Cauldron, LLaVA-OneVision shards, TRL typed content, OpenAI and Qwen-VL
parts; embedded images in the content-addressed store; shards, schema drift and interruptions."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from store.errors import IngestError
from store.images import ImageStore, sniff
from store.ingest import ingest
from tests.store.hub_helpers import (
    BLUE,
    GREEN,
    RED,
    cauldron_row,
    data_url,
    image_bytes,
    onevision_row,
    openai_row,
    qwen_row,
    store_files,
    trl_row,
    write_cauldron,
    write_jsonl,
    write_onevision_shards,
    write_trl,
)
from tests.store.ingest_helpers import samples, snapshot


def stored(catalog, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return str(catalog.workspace.images_dir / digest[:2] / f"{digest}.{sniff(data)}")


def test_cauldron_parquet_detected_and_images_stored_once(tmp_path, catalog):
    rows = [cauldron_row(i, [RED, BLUE] if i % 2 else [GREEN], turns=1 + i % 2) for i in range(7)]
    path = write_cauldron(tmp_path / "ai2d" / "train-00000-of-00001.parquet", rows)
    report = ingest(catalog, path)
    assert (report.format, report.n_samples, report.flags) == ("cauldron", 7, {})
    assert (report.images_written, report.images_reused) == (3, 7)  # 10 images, 3 distinct
    got = samples(catalog, report.dataset)
    assert got[1]["images"] == [stored(catalog, RED), stored(catalog, BLUE)]
    assert got[0]["images"] == [stored(catalog, GREEN)]
    turns = json.loads(got[1]["conversation"])
    assert turns[0]["content"] == "<image>\n<image>\nQuestion 1.0?"  # images come first
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert got[1]["question"] == "Question 1.0?" and got[1]["task"] == "vqav2"
    for data in (RED, BLUE, GREEN):  # stored bytes are the embedded bytes
        assert Path(stored(catalog, data)).read_bytes() == data
    assert sorted(store_files(catalog.workspace.images_dir)) == sorted(
        os.path.relpath(stored(catalog, d), catalog.workspace.images_dir)
        for d in (RED, BLUE, GREEN)
    )


def test_onevision_folder_of_shards_in_name_order_and_glob(tmp_path, catalog):
    folder = tmp_path / "CLEVR-Math"
    # Written out of order on purpose: shard 1 first, so creation order is not name order.
    shards = [[onevision_row(i, RED if i != 1 else None) for i in range(3)]]
    shards.append([onevision_row(i, BLUE) for i in range(3, 6)])
    write_onevision_shards(folder, shards[::-1])  # shard 0 now holds rows 3..5
    report = ingest(catalog, folder)
    assert (report.dataset, report.format, report.n_samples) == ("CLEVR-Math", "llava", 6)
    got = samples(catalog, "CLEVR-Math")
    assert [s["orig_id"] for s in got] == ["ov-3", "ov-4", "ov-5", "ov-0", "ov-1", "ov-2"]
    assert got[4]["images"] == [] and got[4]["flags"] == []  # a text-only row (image null)
    assert json.loads(got[0]["extra"]) == {"data_source": "CLEVR-Math(MathV360K)"}
    again = ingest(catalog, str(folder / "train-*-of-00002.parquet"), name="CLEVR-Math")
    assert (again.n_unchanged, again.n_new, again.images_written) == (6, 0, 0)
    listed = ingest(catalog, sorted(folder.glob("*.parquet"))[::-1], name="listed")
    assert [s["orig_id"] for s in samples(catalog, "listed")] == [s["orig_id"] for s in got]
    assert listed.n_samples == 6


def test_trl_placeholders_take_the_images_column_in_order(tmp_path, catalog):
    path = write_trl(
        tmp_path / "trl.parquet", [trl_row(i, [RED, BLUE][: 1 + i % 2]) for i in range(5)]
    )
    report = ingest(catalog, path)
    assert (report.format, report.flags) == ("trl", {})
    got = samples(catalog, "trl")
    assert got[1]["images"] == [stored(catalog, RED), stored(catalog, BLUE)]
    assert (
        json.loads(got[1]["conversation"])[0]["content"] == "<image>\n<image>\nDescribe picture 1."
    )
    assert got[1]["n_image_tokens"] == 2 and got[1]["answer"] == "Picture 1 is plain."
    short = trl_row(9, [RED, BLUE])
    short["images"] = short["images"][:1]  # two placeholders, one image: a flag, not fatal
    again = ingest(catalog, write_trl(tmp_path / "short.parquet", [short]))
    assert again.flags == {"image_token_mismatch": 1}


def test_openai_parts_data_urls_local_paths_and_remote_urls(tmp_path, catalog):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(GREEN)
    rows = [
        openai_row(0, data_url(BLUE, "image/jpeg")),
        openai_row(1, "img/a.png"),
        openai_row(2, "https://example.com/cat.png"),
    ]
    report = ingest(catalog, write_jsonl(tmp_path / "chat.jsonl", rows))
    assert report.format == "openai"
    assert report.flags == {"remote_image": 1}  # flagged, not fetched, not "missing"
    got = samples(catalog, "chat")
    assert got[0]["images"] == [stored(catalog, BLUE)]
    assert got[1]["images"] == [str(tmp_path / "img" / "a.png")]
    assert got[2]["images"] == ["https://example.com/cat.png"]
    turns = json.loads(got[0]["conversation"])
    assert [t["role"] for t in turns] == ["system", "user", "assistant"]
    assert turns[1]["content"] == "What colour is image 0?\n<image>"
    assert got[0]["extra"] is None  # no invented keys


def test_qwen_parts_and_corrupt_bytes_are_a_flag(tmp_path, catalog):
    (tmp_path / "a.png").write_bytes(RED)
    rows = [
        qwen_row(0, "file://" + str(tmp_path / "a.png")),
        qwen_row(1, data_url(b"not an image")),
    ]
    report = ingest(catalog, write_jsonl(tmp_path / "qwen.jsonl", rows))
    assert report.format == "qwen" and report.flags == {"corrupt_image": 1}
    got = samples(catalog, "qwen")
    assert got[0]["orig_id"] == "0" and got[0]["images"] == [str(tmp_path / "a.png")]
    assert got[1]["images"][0].endswith(".bin") and got[1]["flags"] == ["corrupt_image"]
    # --check-images none looks at nothing: the same bytes are stored but not judged.
    quiet = ingest(catalog, tmp_path / "qwen.jsonl", name="q2", check_images="none")
    assert quiet.flags == {} and quiet.images_written == 0


def test_swift_jsonl_with_base64_images(tmp_path, catalog):
    row = {
        "messages": [
            {"role": "user", "content": "<image>What is it?"},
            {"role": "assistant", "content": "A square.", "loss": True},
        ],
        "images": [data_url(RED)],
    }
    report = ingest(catalog, write_jsonl(tmp_path / "swift.jsonl", [row]))
    assert (report.format, report.flags) == ("swift", {})
    got = samples(catalog, "swift")[0]
    assert got["images"] == [stored(catalog, RED)]
    assert json.loads(got["extra"])["__turns__"] == [{}, {"loss": True}]


def test_reingest_writes_nothing_and_datasets_share_the_store(tmp_path, catalog):
    path = write_trl(tmp_path / "trl.parquet", [trl_row(i, [RED, BLUE]) for i in range(4)])
    ingest(catalog, path)
    before = store_files(catalog.workspace.images_dir)
    again = ingest(catalog, path)
    assert (again.images_written, again.n_unchanged, again.n_updated) == (0, 4, 0)
    other = write_cauldron(tmp_path / "other.parquet", [cauldron_row(0, [BLUE])])
    assert ingest(catalog, other).images_written == 0  # BLUE is already stored
    assert store_files(catalog.workspace.images_dir) == before  # same files, same mtimes


def test_schema_drift_across_shards_names_shard_and_column(tmp_path, catalog):
    folder = tmp_path / "ov"
    write_onevision_shards(folder, [[onevision_row(0, RED)], [onevision_row(1, BLUE)]])
    bad = write_trl(folder / "train-00001-of-00002.parquet", [trl_row(1, [BLUE])])
    before = snapshot(catalog)
    with pytest.raises(IngestError) as err:
        ingest(catalog, folder)
    msg = str(err.value)
    assert str(bad) in msg and "'id'" in msg and "train-00000-of-00002.parquet" in msg
    assert snapshot(catalog) == before
    # The schemas are checked before any row is read: nothing was stored either.
    assert store_files(catalog.workspace.images_dir) == {}


def test_bad_sample_is_fatal_with_shard_and_row(tmp_path, catalog):
    rows = [openai_row(0, data_url(RED)), openai_row(1, data_url(BLUE))]
    rows[1]["messages"][1]["content"].append({"type": "video", "video": "clip.mp4"})
    before = snapshot(catalog)
    with pytest.raises(IngestError, match=r"chat\.jsonl: sample 1 \(line 2\).*'video'"):
        ingest(catalog, write_jsonl(tmp_path / "chat.jsonl", rows))
    assert snapshot(catalog) == before
    # A batch's images are stored only once every row of it converted: nothing was written.
    assert store_files(catalog.workspace.images_dir) == {}
    rows[1] = openai_row(1, data_url(BLUE))
    report = ingest(catalog, write_jsonl(tmp_path / "chat.jsonl", rows))
    assert (report.images_written, report.images_reused, report.flags) == (2, 0, {})


def test_interrupted_write_leaves_no_temp_files_and_rerun_reuses(tmp_path, catalog, monkeypatch):
    rows = [
        cauldron_row(i, [image_bytes(c)]) for i, c in enumerate(["red", "blue", "green", "gray"])
    ]
    path = write_cauldron(tmp_path / "c.parquet", rows, row_group_size=1)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third image
        real_replace(src, dst)

    monkeypatch.setattr("store.images.os.replace", flaky)
    before = snapshot(catalog)
    with pytest.raises(KeyboardInterrupt):
        ingest(catalog, path)
    assert snapshot(catalog) == before
    images = catalog.workspace.images_dir
    assert list((images / ".incoming").iterdir()) == []  # no half-written file left behind
    assert len(store_files(images)) == 2
    monkeypatch.setattr("store.images.os.replace", real_replace)
    report = ingest(catalog, path)
    assert (report.images_written, report.images_reused, report.n_samples) == (2, 2, 4)


def test_store_sweeps_temp_files_of_dead_writers(tmp_path):
    incoming = tmp_path / "images" / ".incoming"
    incoming.mkdir(parents=True)
    dead = incoming / "999999999-abc-deadbeef-1234"  # no such pid
    mine = incoming / f"{os.getpid()}-abc-cafe-1"  # a live writer's file is left alone
    dead.write_bytes(b"half")
    mine.write_bytes(b"half")
    store = ImageStore(tmp_path / "images")
    store.close()
    assert not dead.exists() and mine.exists()


def test_format_names_and_refusals(tmp_path, catalog):
    path = write_trl(tmp_path / "t.parquet", [trl_row(0, [RED])])
    assert ingest(catalog, path, fmt="openai", name="as-openai").format == "openai"
    with pytest.raises(IngestError, match="none of the 1 samples has the field 'texts'"):
        ingest(catalog, path, fmt="cauldron", name="wrong")
    folder = tmp_path / "shards"
    write_onevision_shards(folder, [[onevision_row(0, RED)], [onevision_row(1, RED)]])
    with pytest.raises(IngestError, match="--format table reads one file"):
        ingest(catalog, folder, fmt="table", mapping={"question": "id", "answer": "id"})
    with pytest.raises(IngestError, match="no file matches"):
        ingest(catalog, str(tmp_path / "nothing-*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no .parquet, .jsonl or .json files"):
        ingest(catalog, tmp_path / "empty")
    with pytest.raises(IngestError, match="empty: is a folder"):
        ingest(catalog, [path, tmp_path / "empty"])


def test_embedded_images_are_checked_from_memory_by_mode(tmp_path, catalog):
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buf, format="JPEG")
    cut = buf.getvalue()[: len(buf.getvalue()) * 3 // 4]  # header intact, pixels cut
    path = write_jsonl(tmp_path / "cut.jsonl", [qwen_row(0, data_url(cut, "image/jpeg"))])
    assert ingest(catalog, path, name="h", check_images="header").flags == {}
    decoded = ingest(catalog, path, name="d", check_images="decode")
    assert decoded.flags == {"corrupt_image": 1} and decoded.images_written == 0


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on the cut TIFFs
@pytest.mark.parametrize("mode", ["header", "decode"])
def test_checks_from_memory_give_pillows_verdict_for_every_plugin(mode):
    from store.ingest.images import _pillow, check_bytes

    cases = []
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"):
        good = image_bytes("teal", size=(9, 7), fmt=fmt)
        cases += [good, good[: len(good) // 2], good[:20], good[:8] + b"\0" * 40]
    cases += [b"not an image", b"\xff\xd8\xff" + b"garbage" * 9, b"BM" + b"\0" * 60]
    for data in cases:  # the plugin the magic bytes name first, then all: Pillow's verdict
        assert check_bytes(data, mode) == _pillow(io.BytesIO(data), mode), data[:12]


def _jpegs() -> dict[str, bytes]:
    """JPEGs as encoders write them: baseline, progressive, grey, CMYK, ICC, Exif, comment."""
    from PIL import ImageCms

    rgb = Image.effect_noise((40, 30), 50).convert("RGB")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0128], exif[0x011A], exif[0x011B] = 2, 72.0, 72.0
    kinds = {
        "baseline": (rgb, {}),
        "progressive": (rgb, {"progressive": True}),
        "grey": (rgb.convert("L"), {}),
        "cmyk": (rgb.convert("CMYK"), {}),
        "icc": (rgb, {"icc_profile": icc}),
        "exif": (rgb, {"exif": exif}),
        "comment": (rgb, {"comment": b"made by a camera"}),
    }
    out = {}
    for name, (im, options) in kinds.items():
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80, **options)
        out[name] = buf.getvalue()
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on the damaged Exif segments
def test_quick_jpeg_header_reader_agrees_with_pillow_on_cut_and_damaged_files():
    import random

    from store.ingest.images import _pillow, check_bytes, jpeg_header_ok

    rng = random.Random(14)
    quick = 0
    for name, good in _jpegs().items():
        header = good.index(b"\xff\xda") + 16  # up to a little past the start of scan
        variants = [good] + [good[:cut] for cut in range(0, header)]
        for _ in range(300):  # a byte of the header changed
            damaged = bytearray(good)
            damaged[rng.randrange(2, header)] = rng.randrange(256)
            variants.append(bytes(damaged))
        for data in variants:
            assert check_bytes(data, "header") == _pillow(io.BytesIO(data), "header"), (name, data)
            quick += jpeg_header_ok(data)
        if name not in ("exif",):  # Exif's resolution is Pillow's to parse: never answered here
            assert jpeg_header_ok(good), name
    assert quick > 1000  # the quick reader answered for most of them, not only Pillow


def test_progress_counts_bytes_and_rows_and_map_renames_columns(tmp_path, catalog, monkeypatch):
    monkeypatch.setattr("store.ingest.shards.ROWS_PER_BATCH", 2)
    folder = tmp_path / "ov"
    write_onevision_shards(folder, [[onevision_row(i, RED) for i in range(5)]] * 2)
    events = []
    report = ingest(catalog, folder, progress=events.append)
    reads = [(e.done, e.total, e.samples) for e in events if e.phase == "read"]
    total = sum(f.stat().st_size for f in folder.glob("*.parquet"))
    assert reads[0] == (0, total, 0) and reads[-1] == (total, total, 10)
    assert len(reads) >= 6  # one event per batch of 2 rows, not one per file
    assert all(a[0] <= b[0] and a[2] <= b[2] for a, b in zip(reads, reads[1:], strict=False))
    assert report.n_samples == 10
    # --map renames a Hub shape's columns (here: the image column is called `picture`).
    path = tmp_path / "renamed.jsonl"
    write_jsonl(path, [{**onevision_row(0, BLUE), "image": None, "picture": data_url(BLUE)}])
    mapped = ingest(catalog, path, fmt="llava", mapping={"image": "picture"})
    assert samples(catalog, "renamed")[0]["images"] == [stored(catalog, BLUE)]
    assert mapped.flags == {}


@pytest.fixture
def image_server():
    """A real HTTP server on 127.0.0.1: /red.png is an image, anything else is a 404."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.path)
            body = RED if self.path == "/red.png" else b"not found"
            self.send_response(200 if self.path == "/red.png" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_remote_urls_are_fetched_only_when_asked(tmp_path, catalog, image_server):
    base, seen = image_server
    rows = [openai_row(0, f"{base}/red.png"), openai_row(1, f"{base}/gone.png")]
    path = write_jsonl(tmp_path / "remote.jsonl", rows)
    plain = ingest(catalog, path, name="plain")
    assert plain.flags == {"remote_image": 2} and seen == []  # nothing requested
    fetched = ingest(catalog, path, name="fetched", fetch_remote=True)
    assert sorted(seen) == ["/gone.png", "/red.png"]
    assert fetched.images_fetched == 1 and list(fetched.fetch_failed) == [f"{base}/gone.png"]
    assert fetched.flags == {"remote_image": 1}
    got = samples(catalog, "fetched")
    assert got[0]["images"] == [stored(catalog, RED)] and got[0]["flags"] == []
    assert got[0]["images_raw"] == [f"{base}/red.png"]  # as written
    assert got[1]["images"] == [f"{base}/gone.png"] and got[1]["flags"] == ["remote_image"]
    # A plain LLaVA file (the DuckDB fast path) is fetched the same way.
    llava = [{"id": "a", "image": f"{base}/red.png", "conversations": [
        {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Red."}]}]  # fmt: skip
    report = ingest(catalog, write_jsonl(tmp_path / "l.jsonl", llava), fetch_remote=True)
    assert (report.engine, report.flags, report.images_fetched) == ("duckdb", {}, 1)
