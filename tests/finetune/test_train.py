"""The fine-tune job (transformers' Trainer + peft) on a tiny random VLM: trains, saves an adapter
that reloads and generates, resumes after kill -9, runs as two gloo processes through torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pyarrow.parquet as pq
import pytest

from selection.finetune.config import FinetuneConfig
from selection.finetune.hf import Plan, last_checkpoint, read_result
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
    # 3 samples, 1 per step, 2 epochs; a checkpoint every 2 steps, the newest 2 kept.
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert [r["samples"] for r in steps] == [1] * 6  # counted per step, not per prefetch
    assert all(r["tokens"] > 0 and r["seconds"] > 0 for r in steps)
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]  # same 3 samples twice: it learns them
    assert [r["epoch"] for r in steps][2] == pytest.approx(1.0)
    events = [json.loads(x) for x in (run_dir / "progress.jsonl").read_text().splitlines()]
    train_events = [e for e in events if e.get("stage") == "train" and e.get("extra")]
    assert train_events, "training emits progress with its metrics"
    assert {"loss", "lr", "epoch", "samples_per_s"} <= set(train_events[-1]["extra"])
    assert train_events[-1]["extra"]["world_size"] == 1
    # TensorBoard (installed with the dev extra) logs into the run folder by default.
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))

    summary = read_training_summary(run_dir / "adapter")
    assert summary["run_id"] == run_dir.name and summary["n_train"] == 3
    assert summary["steps"] == 6 and summary["arch"] == "qwen2_vl" and summary["world_size"] == 1
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

    # 24 short steps (3 samples an epoch): the kill lands well before the end even on a busy box.
    kw = dict(epochs=8, max_steps=24, save_steps=4, keep_checkpoints=3, report_to=["none"])
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
    first = run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json"  # written last
    deadline = time.monotonic() + 120
    while not first.exists():
        assert time.monotonic() < deadline, (run_dir / "job.log").read_text()
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not (run_dir / "train" / "part-00000.parquet").exists(), "killed mid-run"
    assert runs.read_status(run_dir)["status"] == runs.INTERRUPTED
    done = last_checkpoint(run_dir)
    assert done is not None and int(done.name.split("-")[1]) < 24

    assert run_job(run_dir, handle_signals=False) == "done"
    log = (run_dir / "job.log").read_text()
    assert "resumed from " + str(run_dir / "checkpoints" / "checkpoint-") in log
    steps = pq.read_table(run_dir / "train").to_pylist()
    assert [r["step"] for r in steps] == list(range(1, 25))  # no step lost, none repeated
    ref_steps = pq.read_table(ref / "train").to_pylist()
    # Same data order and RNG state after the restore; the sums may round differently.
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in ref_steps], rel=1e-4)
    a, b = _adapter_weights(run_dir / "adapter"), _adapter_weights(ref / "adapter")
    assert a.keys() == b.keys()
    import torch

    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    summary = read_training_summary(run_dir)
    assert summary["train_time_s"] > 0 and len(read_result(run_dir)["segments"]) == 1


def test_cancel_stops_at_a_checkpoint_and_the_rerun_finishes(catalog, manifest_dir, qwen_model):
    cfg = _config(manifest_dir / "train.llava.json", qwen_model, max_steps=4, report_to=["none"])
    run_dir = create_finetune_run(catalog, cfg, seed=0)

    def cancel_once_training_runs(event: dict) -> None:
        if event.get("stage") == "train" and event.get("extra"):  # a step's metrics
            (run_dir / runs.CANCEL).touch()  # what `thresher cancel` writes

    status = run_job(run_dir, handle_signals=False, on_event=cancel_once_training_runs)
    assert status == "cancelled"  # at the end of the next step, with a checkpoint there
    stopped = last_checkpoint(run_dir)
    assert stopped is not None and 1 <= int(stopped.name.split("-")[1]) < 4
    assert not list((run_dir / "train").glob("part-*.parquet"))
    from selection.jobs.runner import prepare_resume

    prepare_resume(run_dir)
    assert run_job(run_dir, handle_signals=False) == "done"
    steps = pq.read_table(run_dir / "train").to_pylist()
    assert [r["step"] for r in steps] == [1, 2, 3, 4]


def test_plan_counts_steps_per_process():
    cfg = FinetuneConfig(manifest="m", model="x", batch_size=3, grad_accum=2, epochs=2.5)
    plan = Plan.of(10, cfg)  # 4 micro-batches of <= 3 -> 2 steps per epoch
    assert (plan.steps_per_epoch, plan.total_steps) == (2, 5)
    two = Plan.of(10, cfg, world=2)  # 5 samples each: 2 micro-batches -> 1 step per epoch
    assert (two.steps_per_epoch, two.total_steps) == (1, 3)
    assert Plan.of(10, FinetuneConfig(manifest="m", model="x", max_steps=1)).total_steps == 1


def test_missing_optional_pieces_are_named(tmp_path, monkeypatch):
    import importlib.util

    from selection.finetune import hf

    real = importlib.util.find_spec
    gone = {"bitsandbytes", "deepspeed"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n in gone else real(n, *a)
    )
    ds = tmp_path / "ds.json"
    ds.write_text("{}")
    cfg = FinetuneConfig(manifest="m", model="x", deepspeed=str(ds))
    with pytest.raises(ThresherError, match="pip install deepspeed"):
        hf.training_args(cfg, tmp_path, hf.Plan.of(3, cfg), 0)
    with pytest.raises(ThresherError, match=r"bitsandbytes: pip install 'thresher\[train\]'"):
        hf._quantization(FinetuneConfig(manifest="m", model="x", quantize="4bit"), None, False)
    with pytest.raises(ThresherError, match="TrainingArguments has no not_an_arg"):
        hf.training_args(
            FinetuneConfig(manifest="m", model="x", trainer_args={"not_an_arg": "1"}),
            tmp_path,
            hf.Plan.of(3, cfg),
            0,
        )
    with pytest.raises(ThresherError, match="no such file"):
        FinetuneConfig(manifest="m", model="x", fsdp_config=str(tmp_path / "nope.json"))


def test_two_gloo_processes_train_one_adapter(catalog, manifest_dir, qwen_model):
    """`--nproc 2` on a CPU-only machine: torchrun starts two ranks that train with DDP over gloo."""
    cfg = _config(
        manifest_dir / "train.swift.jsonl", qwen_model, epochs=2, nproc=2, device="cpu",
        report_to=["none"],
    )  # fmt: skip
    run_dir = create_finetune_run(catalog, cfg, seed=0)
    events: list[dict] = []
    assert run_job(run_dir, handle_signals=False, on_event=events.append) == "done"
    summary = read_training_summary(run_dir)
    # 3 samples over 2 ranks, 1 each per step: 2 steps an epoch, 2 epochs.
    assert summary["world_size"] == 2 and summary["steps"] == 4
    steps = pq.read_table(run_dir / "train").to_pylist()
    assert [r["samples"] for r in steps] == [2, 2, 2, 2]  # both ranks counted (one repeats one)
    relayed = [e for e in events if e.get("stage") == "train" and e.get("extra")]
    assert relayed and relayed[-1]["extra"]["world_size"] == 2  # rank 0's events, relayed
    assert _adapter_weights(run_dir / "adapter")


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


def test_loss_false_answers_survive_the_run_snapshot(catalog, tmp_path, qwen_model):
    """The run trains from input.parquet, so ms-swift's per-turn `"loss": false` must be in it."""
    import pyarrow.parquet as pq

    from selection.finetune.hf import examples_from_input

    row = {"id": "a", "messages": [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1", "loss": False},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
    ]}  # fmt: skip
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps(row) + "\n")
    run_dir = create_finetune_run(catalog, _config(man, qwen_model), seed=0)
    (ex,) = examples_from_input(pq.read_table(run_dir / runs.INPUT))
    assert ex.no_loss == (0,) and ex.turns[1] == ("assistant", "a1")
