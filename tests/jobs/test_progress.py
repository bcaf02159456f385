"""Progress events: the reader skips a partial last line; events are valid with and without NVML."""

from __future__ import annotations

import json
import sys
import types

import pytest

from selection.jobs import create_run, run_job, telemetry
from store import runs
from tests.helpers.jobs import SleepyConfig

REQUIRED = {"t": float, "run_id": str, "event": str}
KINDS = {"stage_start", "progress", "stage_done", "run_done", "run_failed", "run_cancelled", "log"}


def test_reader_skips_a_partial_last_line_and_reads_it_once_complete(tmp_path):
    runs.append_event(tmp_path, {"event": "progress", "done": 1})
    runs.append_event(tmp_path, {"event": "progress", "done": 2})
    with open(tmp_path / runs.PROGRESS, "ab") as fh:
        fh.write(b'{"event": "progress", "do')  # the writer is mid-line
    events, offset = runs.read_events(tmp_path)
    assert [e["done"] for e in events] == [1, 2]
    assert runs.read_events(tmp_path, offset) == ([], offset)  # nothing new yet, offset kept
    with open(tmp_path / runs.PROGRESS, "ab") as fh:
        fh.write(b'ne": 3}\n')
    more, offset2 = runs.read_events(tmp_path, offset)
    assert more == [{"event": "progress", "done": 3}]
    assert offset2 == (tmp_path / runs.PROGRESS).stat().st_size


def test_reader_skips_a_torn_line_left_by_a_killed_writer(tmp_path):
    runs.append_event(tmp_path, {"event": "progress", "done": 1})
    with open(tmp_path / runs.PROGRESS, "ab") as fh:
        fh.write(b'{"event": "prog\n')  # killed mid-line; the resumed job appends after it
    runs.append_event(tmp_path, {"event": "progress", "done": 5})
    events, _ = runs.read_events(tmp_path)
    assert [e["done"] for e in events] == [1, 5]
    assert runs.read_events(tmp_path / "absent") == ([], 0)


def test_events_are_valid_without_telemetry(toy):
    assert telemetry.GpuSampler().sample() == []  # this machine: no NVML or no GPU
    run_dir = create_run(toy, "sleepy", "toy", SleepyConfig(sleep_s=0.6, shard_size=24), seed=0)
    run_job(run_dir)
    lines = (run_dir / runs.PROGRESS).read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is whole JSON
    assert events
    for ev in events:
        for key, typ in REQUIRED.items():
            assert isinstance(ev[key], typ), (key, ev)
        assert ev["event"] in KINDS
        assert ev.get("gpu", []) == []
        if ev["event"] in ("progress", "stage_start", "stage_done"):
            assert ev["stage"] in ("score", "embeddings", "result")
            assert 0 <= ev["done"] <= ev["total"]
            assert ev["unit"] == "samples"
    score = [e for e in events if e.get("stage") == "score" and e["event"] == "progress"]
    # In-shard ctx.progress() calls are stage-wide and carry `extra`; rate and ETA once known.
    assert [e["done"] for e in score] == sorted(e["done"] for e in score)
    assert any("loss" in e.get("extra", {}) for e in score)
    last = score[-1]
    assert last["done"] == 24 and last["rate"] > 0 and last["eta_s"] == 0
    folded: dict = {}
    runs.fold_events(events, folded)
    assert all(sp.finished and sp.done == 24 for sp in folded.values())


class _FakeNvml(types.ModuleType):
    """The NVML boundary (no GPU here): two devices, the second one without power readings."""

    def __init__(self):
        super().__init__("pynvml")
        self.calls = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"Fake H100" if h == 0 else "Fake L4"

    def nvmlDeviceGetUUID(self, h):  # bytes in older bindings, str in newer ones
        return b"GPU-aaaa1111-0000" if h == 0 else "GPU-bbbb2222-0000"

    def nvmlDeviceGetUtilizationRates(self, h):
        self.calls += 1
        return types.SimpleNamespace(gpu=90 + h)

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(used=2e9 * (h + 1), total=8e10)

    def nvmlDeviceGetPowerUsage(self, h):
        if h == 1:
            raise RuntimeError("not supported")
        return 310500


def test_sampler_reads_every_device_and_throttles(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(telemetry, "NVML_AVAILABLE", True)
    sampler = telemetry.GpuSampler(min_interval_s=60)
    first = sampler.sample()
    assert first == [
        {
            "index": 0,
            "name": "Fake H100",
            "util": 90,
            "mem_used": 2e9,
            "mem_total": 8e10,
            "power_w": 310.5,
            "nvml_index": 0,
        },
        {
            "index": 1,
            "name": "Fake L4",
            "util": 91,
            "mem_used": 4e9,
            "mem_total": 8e10,
            "power_w": None,
            "nvml_index": 1,
        },
    ]
    assert sampler.sample() == first and fake.calls == 2  # second call within 60 s: cached


@pytest.mark.parametrize(
    ("env", "expect"),
    [
        ("1", [1]),  # the job's GPU 0 is the machine's GPU 1
        ("1,0", [1, 0]),
        ("GPU-bbbb", [1]),  # a unique UUID prefix, as CUDA accepts
        ("GPU-bbbb2222-0000,GPU-aaaa1111-0000", [1, 0]),
        ("", []),
        ("-1", []),
        ("0,7,1", [0]),  # CUDA stops at the first entry naming no device
    ],
)
def test_sampler_reports_only_the_devices_the_job_can_see(monkeypatch, env, expect):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml())
    monkeypatch.setattr(telemetry, "NVML_AVAILABLE", True)
    seen = telemetry.GpuSampler().sample()
    assert [d["nvml_index"] for d in seen] == expect
    assert [d["index"] for d in seen] == list(range(len(expect)))  # numbered as the job sees them


def test_sampler_with_nvml_but_no_driver_is_silent(monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise OSError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    monkeypatch.setattr(telemetry, "NVML_AVAILABLE", True)
    assert telemetry.GpuSampler().sample() == []


def test_last_events_start_at_a_line_boundary(tmp_path):
    for i in range(200):
        runs.append_event(tmp_path, {"event": "progress", "done": i, "extra": {"x": {"y": i}}})
    size = (tmp_path / runs.PROGRESS).stat().st_size
    every = runs.read_events(tmp_path)[0]
    for max_bytes in (1, 50, 51, 52, 1000, 1001, size - 1, size, size + 10):
        tail = runs.read_last_events(tmp_path, max_bytes)
        assert tail == every[len(every) - len(tail) :]  # a suffix of whole events, in order
        tail_bytes = sum(len(json.dumps(e, separators=(",", ":"))) + 1 for e in tail)
        line = len(json.dumps(every[-1], separators=(",", ":"))) + 1
        assert tail_bytes <= max_bytes and (max_bytes < line or tail)
    assert runs.read_last_events(tmp_path, size) == every
    assert runs.read_last_events(tmp_path / "absent") == []
