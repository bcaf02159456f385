"""End to end on the CLI: export demo manifests (full and a selection), `thresher train` on each,
`thresher eval` zero-shot and with each adapter, `thresher report` as CSV, Markdown and a table."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from store.errors import ThresherError
from tests.helpers.datasets import make_demo_dataset, sample_ids, write_run
from tui.cli import cli


def _run(ws, *args) -> str:
    result = CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def demo(catalog):
    """A training dataset, a held-out one, and a finished selection run keeping half of training."""
    make_demo_dataset(catalog, n=12, seed=0, name="demo")
    make_demo_dataset(catalog, n=8, seed=1, name="heldout")
    ids = sample_ids(catalog, "demo")
    keep = [i % 2 == 0 for i in range(len(ids))]
    result = pa.table({"sample_id": ids, "selected": keep, "wide": [True] * len(ids)})
    write_run(catalog, "ofa-demo", "demo", result)
    return catalog


def test_train_eval_report_end_to_end(demo, workspace, qwen_model):
    from store.export import export

    full = export(demo, dataset="demo", fmt="swift").path
    half = export(demo, dataset="demo", run_id="ofa-demo", selection="default", fmt="sharegpt").path

    train = [
        "--model",
        str(qwen_model),
        "--grad-accum",
        "2",
        "--epochs",
        "1",
        "--save-steps",
        "2",
        "--lr",
        "1e-3",
    ]
    out_full = _run(workspace, "train", "--manifest", str(full), *train, "--name", "ft-full")
    out_half = _run(workspace, "train", "--manifest", str(half), *train, "--name", "ft-half")
    assert "Adapter:" in out_full and "Adapter:" in out_half
    full_sum = json.loads((workspace.run_dir("ft-full") / "training_summary.json").read_text())
    half_sum = json.loads((workspace.run_dir("ft-half") / "training_summary.json").read_text())
    # The manifest's sidecar links the adapter to the selection it was trained on.
    assert full_sum["selection_run_id"] is None and full_sum["dataset"] == "demo"
    assert half_sum["selection_run_id"] == "ofa-demo" and half_sum["selection"] == "default"
    assert half_sum["n_train"] < full_sum["n_train"]
    # The training snapshot knows the catalog ids of what it trained on: the selected half.
    import pyarrow.parquet as pq

    trained = pq.read_table(workspace.run_dir("ft-half") / "input.parquet")["sample_id"].to_pylist()
    ids = sample_ids(demo, "demo")
    assert set(trained) <= {i for k, i in enumerate(ids) if k % 2 == 0} and None not in trained

    model = ["--model", str(qwen_model), "--dataset", "heldout", "--max-new-tokens", "4"]
    _run(workspace, "eval", *model, "--name", "ev-zero")
    _run(
        workspace,
        "eval",
        *model,
        "--adapter",
        str(workspace.run_dir("ft-full") / "adapter"),
        "--name",
        "ev-full",
    )
    said = _run(
        workspace,
        "eval",
        *model,
        "--adapter",
        full_sum["adapter"].replace("ft-full", "ft-half"),
        "--name",
        "ev-half",
    )
    assert "Accuracy" in said and "ofa-demo/default" in said

    with demo.connect() as con:
        stored = con.execute(
            "SELECT eval_id, adapter, finetune_run_id, selection_run_id, selection, n, n_train, "
            "accuracy, per_task FROM evaluations ORDER BY eval_id"
        ).fetchall()
    assert [r[0] for r in stored] == ["ev-full", "ev-half", "ev-zero"]
    by_id = {r[0]: r for r in stored}
    assert by_id["ev-zero"][1] is None and by_id["ev-zero"][2] is None
    assert by_id["ev-half"][2:5] == ("ft-half", "ofa-demo", "default")
    assert all(r[5] == 8 for r in stored)  # every held-out sample answered and judged
    per_task = json.loads(by_id["ev-half"][8])
    assert sum(v["n"] for v in per_task.values()) == 8 and len(per_task) > 1

    # A result the catalog lost (e.g. an eval that finished detached) is recorded by `report`.
    with demo.transaction() as con:
        con.execute("DELETE FROM evaluations WHERE eval_id = 'ev-zero'")
    rows = list(
        csv.DictReader(
            io.StringIO(_run(workspace, "report", "--dataset", "heldout", "--format", "csv"))
        )
    )
    assert [r["training_data"] for r in rows] == ["zero-shot", "full", "ofa-demo/default"]
    rep = {r["training_data"]: r for r in rows}
    assert float(rep["ofa-demo/default"]["accuracy"]) == pytest.approx(by_id["ev-half"][7])
    assert int(rep["ofa-demo/default"]["n_train"]) == half_sum["n_train"]
    assert float(rep["ofa-demo/default"]["reduction"]) == pytest.approx(
        1 - half_sum["n_train"] / full_sum["n_train"], abs=1e-6
    )
    assert float(rep["ofa-demo/default"]["delta_accuracy"]) == pytest.approx(
        by_id["ev-half"][7] - by_id["ev-full"][7], abs=1e-6
    )
    assert float(rep["full"]["reduction"]) == 0.0 and rep["full"]["delta_accuracy"] == ""
    assert float(rep["full"]["train_time_s"]) == pytest.approx(full_sum["train_time_s"], rel=1e-4)

    md = _run(workspace, "report", "--dataset", "heldout", "--format", "markdown")
    assert md.splitlines()[0].startswith("| Model | Training data | Accuracy")
    assert len(md.splitlines()) == 2 + 3
    table = _run(workspace, "report", "--dataset", "heldout")
    assert "Selection vs accuracy on heldout" in table and "ofa-demo/default" in table


def test_print_command_reads_the_exported_manifest_and_registration(demo, workspace):
    from store.export import export

    path = export(demo, dataset="demo", run_id="ofa-demo", selection="default", fmt="sharegpt").path
    out = _run(
        workspace,
        "train",
        "--manifest",
        str(path),
        "--print-command",
        "llamafactory",
        "--arch",
        "qwen2_vl",
    )
    assert f"already registers {path.stem!r}" in out  # the export wrote dataset_info.json
    assert f"--dataset {path.stem}" in out and f"--dataset_dir {path.parent}" in out
    info = json.loads((path.parent / "dataset_info.json").read_text())
    assert info[path.stem]["file_name"] == path.name
    out = _run(
        workspace, "train", "--manifest", str(path), "--print-command", "swift", "--model", "/m"
    )
    assert f"--dataset {path}" in out and "--model /m" in out


def test_errors_are_one_line_for_the_user(demo, workspace):
    runner = CliRunner()
    with pytest.raises(ThresherError, match="train needs --model"):
        runner.invoke(
            cli,
            ["-w", str(workspace.root), "train", "--manifest", "x.json"],
            catch_exceptions=False,
        )
    with pytest.raises(ThresherError, match="no evaluations on dataset 'demo'"):
        runner.invoke(
            cli, ["-w", str(workspace.root), "report", "--dataset", "demo"], catch_exceptions=False
        )
    with pytest.raises(ThresherError, match="not a LoRA adapter folder"):
        runner.invoke(
            cli,
            [
                "-w",
                str(workspace.root),
                "eval",
                "--model",
                "m",
                "--dataset",
                "heldout",
                "--adapter",
                str(workspace.root),
            ],
            catch_exceptions=False,
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "openai"], "--engine openai needs --base-url"),
        (["--judge", "llm", "--base-url", "http://127.0.0.1:9/v1"], "needs --judge-model"),
        (["--judge", "llm", "--judge-model", "j"], "--judge llm needs an endpoint"),
        (["--engine-opt", "device"], "write it as KEY=VALUE"),
    ],
)
def test_run_clipper_and_eval_share_engine_options_and_their_checks(
    demo, workspace, extra, message
):
    head = ["-w", str(workspace.root)]
    for command in (["run", "clipper"], ["eval"]):
        argv = [*head, *command, "--dataset", "heldout", "--model", "m", *extra]
        with pytest.raises(ThresherError, match=message) as err:
            CliRunner().invoke(cli, argv, catch_exceptions=False)
        prefix = command[-1]
        assert "KEY=VALUE" in message or str(err.value).startswith(f"{prefix}: ")
    eval_flags = {o for p in cli.commands["eval"].params for o in p.opts}
    clipper_flags = {o for p in cli.commands["run"].commands["clipper"].params for o in p.opts}
    shared = {"--model", "--engine", "--base-url", "--api-key-env", "--judge", "--judge-model",
              "--engine-opt"}  # fmt: skip
    assert shared <= eval_flags & clipper_flags
