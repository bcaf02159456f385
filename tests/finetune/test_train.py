"""The fine-tune job on a tiny random VLM: trains, saves an adapter that reloads and generates, resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pyarrow.parquet as pq
import pytest

from selection.finetune.config import FinetuneConfig
from selection.finetune.train import create_finetune_run, read_training_summary
from selection.jobs import run_job
from store import runs
from store.errors import ThresherError


def _config(manifest, model, **kw) -> FinetuneConfig:
    base = dict(
        manifest=str(manifest), model=str(model), batch_size=1, grad_accum=1, epochs=2,
        save_steps=2, learning_rate=5e-3, lora_r=4, lora_alpha=8, warmup_ratio=0.0,
    )  # fmt: skip
    base.update(kw)
    return FinetuneConfig(**base)


def _adapter_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_finetune_trains_saves_and_the_adapter_generates(catalog, manifest_dir, qwen_model):
    cfg = _config(manifest_dir / "train.llava.json", qwen_model)
    run_dir = create_finetune_run(catalog, cfg, seed=0)
    assert run_job(run_dir, handle_signals=False) == "done"

    meta = runs.read_run_json(run_dir)
    assert meta["outputs"] is None and meta["method"] == "finetune"
    steps = pq.read_table(run_dir / "train").to_pylist()
    # 3 samples, 1 per step, 2 epochs; one shard (and checkpoint) per 2 steps.
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert len(list((run_dir / "train").glob("part-*.parquet"))) == 3
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]  # same 3 samples twice: it learns them
    assert [r["epoch"] for r in steps][2] == pytest.approx(1.0)
    events = [json.loads(x) for x in (run_dir / "progress.jsonl").read_text().splitlines()]
    train_events = [e for e in events if e.get("stage") == "train" and e.get("extra")]
    assert train_events, "training emits progress with its metrics"
    assert {"loss", "lr", "epoch", "samples_per_s"} <= set(train_events[-1]["extra"])

    summary = read_training_summary(run_dir / "adapter")
    assert summary["run_id"] == run_dir.name and summary["n_train"] == 3
    assert summary["steps"] == 6 and summary["arch"] == "qwen2_vl"
    assert summary["trainable_params"] < summary["total_params"]
    assert summary["train_time_s"] > 0 and summary["final_loss"] < summary["first_loss"]

    # The adapter reloads on the base model, changes its outputs, and generates.
    from selection.engines import load_engine, user

    img = str(manifest_dir / "img0.png")
    base = load_engine("transformers", str(qwen_model), device="cpu")
    tuned = load_engine(
        "transformers", str(qwen_model), device="cpu", adapter=str(run_dir / "adapter")
    )
    req = [(user("Is there a red square?", img),)]
    lp_base = base.answer_logprobs(req, ["yes"])[0][0]
    lp_tuned = tuned.answer_logprobs(req, ["yes"])[0][0]
    assert lp_tuned != lp_base
    out = tuned.generate(req, max_new_tokens=4)
    assert isinstance(out[0], str)


def test_idefics3_trains_too_with_gradient_checkpointing(catalog, manifest_dir, idefics_model):
    cfg = _config(
        manifest_dir / "train.swift.jsonl", idefics_model, epochs=1, save_steps=3,
        gradient_checkpointing=True, batch_size=2, grad_accum=1,
    )  # fmt: skip
    run_dir = create_finetune_run(catalog, cfg, seed=1)
    assert run_job(run_dir, handle_signals=False) == "done"
    summary = json.loads((run_dir / "training_summary.json").read_text())
    assert summary["arch"] == "idefics3" and summary["steps"] == 2  # 3 samples in pairs
    assert "activation checkpointing on" in (run_dir / "job.log").read_text()
    assert math.isfinite(summary["final_loss"])
    assert all(".text_model." in k for k in _adapter_weights(run_dir / "adapter"))


def test_same_command_finds_the_run_and_changed_settings_are_refused(
    catalog, manifest_dir, qwen_model
):
    man = manifest_dir / "train.llava.json"
    first = create_finetune_run(catalog, _config(man, qwen_model), seed=0)
    assert create_finetune_run(catalog, _config(man, qwen_model), seed=0) == first
    # Other settings make another run by default, and are refused under the same --name.
    other = create_finetune_run(catalog, _config(man, qwen_model, learning_rate=0.1), seed=0)
    assert other != first
    with pytest.raises(ThresherError, match=r"learning_rate: 0.005 -> 0.1"):
        create_finetune_run(
            catalog, _config(man, qwen_model, learning_rate=0.1), seed=0, run_id=first.name
        )


def test_kill_and_rerun_resumes_at_the_checkpoint_and_matches_an_uninterrupted_run(
    catalog, manifest_dir, qwen_model
):
    from selection.jobs import spawn_worker

    kw = dict(epochs=4, max_steps=12, save_steps=2)
    ref = create_finetune_run(
        catalog, _config(manifest_dir / "train.llava.json", qwen_model, **kw), seed=3, run_id="ref"
    )
    assert run_job(ref, handle_signals=False) == "done"

    run_dir = create_finetune_run(
        catalog,
        _config(manifest_dir / "train.llava.json", qwen_model, **kw),
        seed=3,
        run_id="killed",
    )
    pid = spawn_worker(run_dir)
    first_shard = run_dir / "train" / "part-00000.parquet"
    deadline = time.monotonic() + 120
    while not first_shard.exists():
        assert time.monotonic() < deadline, (run_dir / "job.log").read_text()
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    done_shards = sorted((run_dir / "train").glob("part-*.parquet"))
    assert 1 <= len(done_shards) < 6, "killed mid-run"
    assert runs.read_status(run_dir)["status"] == runs.INTERRUPTED

    assert run_job(run_dir, handle_signals=False) == "done"
    resume_step = 2 * len(done_shards)
    log = (run_dir / "job.log").read_text()
    assert f"resumed from {run_dir / 'checkpoints' / f'step-{resume_step:07d}'}" in log
    steps = pq.read_table(run_dir / "train").to_pylist()
    assert [r["step"] for r in steps] == list(range(1, 13))  # no step lost, none repeated
    ref_steps = pq.read_table(ref / "train").to_pylist()
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in ref_steps], rel=1e-5)
    a, b = _adapter_weights(run_dir / "adapter"), _adapter_weights(ref / "adapter")
    assert a.keys() == b.keys()
    import torch

    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_plan_visits_every_example_once_per_epoch_in_a_seeded_order():
    from selection.finetune.trainer import Plan

    cfg = FinetuneConfig(manifest="m", model="x", batch_size=3, grad_accum=2, epochs=2.5)
    plan = Plan.of(10, cfg)  # 4 micro-batches of <= 3 -> 2 steps per epoch
    assert (plan.steps_per_epoch, plan.total_steps) == (2, 5)
    for epoch in (0, 1):
        seen = [
            i
            for s in range(epoch * 2, epoch * 2 + 2)
            for mb in plan.micro_batches(s, 7)
            for i in mb
        ]
        assert sorted(seen) == list(range(10))
    assert plan.micro_batches(0, 7) != plan.micro_batches(2, 7)  # a new order each epoch
    assert plan.micro_batches(3, 7) == Plan.of(10, cfg).micro_batches(3, 7)  # rebuilt after restart
    assert Plan.of(10, FinetuneConfig(manifest="m", model="x", max_steps=1)).total_steps == 1


@pytest.mark.parametrize("arch", ["llava", "qwen2_5_vl"])
def test_llava_and_qwen2_5_vl_train_and_leave_the_vision_side_alone(
    catalog, manifest_dir, request, arch
):
    model = request.getfixturevalue({"llava": "llava_model", "qwen2_5_vl": "qwen25_model"}[arch])
    cfg = _config(manifest_dir / "train.llava.json", model, epochs=1, save_steps=3)
    run_dir = create_finetune_run(catalog, cfg, seed=0)
    assert run_job(run_dir, handle_signals=False) == "done"
    summary = read_training_summary(run_dir)
    assert summary["arch"] == arch and summary["steps"] == 3
    assert math.isfinite(summary["final_loss"])
    keys = list(_adapter_weights(run_dir / "adapter"))
    assert keys and all(".language_model." in k for k in keys)
    vision = ("vision_tower", "multi_modal_projector", "visual", "merger")
    assert not any(v in k for k in keys for v in vision)
