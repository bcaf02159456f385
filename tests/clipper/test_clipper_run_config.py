"""ClipperConfig round-trips through run.json and refuses bad values with user errors."""

from __future__ import annotations

import pytest

from selection.clipper.config import ClipperConfig, selection_names
from selection.clipper.result import outputs
from selection.clipper.stages import build_stages
from selection.jobs.registry import config_from_params, config_to_params
from store.errors import ThresherError


def test_round_trip_through_run_json_params():
    cfg = ClipperConfig(
        model="m", m=3, tau=2, assignment="balanced", engine_opts={"dtype": "float16"}
    )
    back = config_from_params(ClipperConfig, config_to_params(cfg))
    assert (
        back == cfg
        and back.default_selection == "P2+W"
        and back.mid_ppl_reference == "fraction 0.5"
    )
    with pytest.raises(ThresherError, match="unknown keys"):
        ClipperConfig.from_dict({**config_to_params(cfg), "mm": 3})


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"engine": "onnx"}, "--engine"),
        ({"judge": "human"}, "--judge"),
        ({"assignment": "greedy"}, "--assignment"),
        ({"tau": 3}, "--tau"),
        ({"batch_size": 0}, "batch_size"),
        ({"limit": 0}, "--limit"),
        ({"mid_ppl_match": "P3+W"}, "mid_ppl_match"),
        ({"mid_ppl_fraction": 0.0}, "--mid-ppl-fraction"),
        ({"max_empty_fraction": 1.5}, "--max-empty-fraction"),
        ({"zero_shot_prompt": "Answer briefly."}, "zero_shot_prompt"),
    ],
)
def test_bad_values_are_user_errors(kw, message):
    with pytest.raises(ThresherError, match=message):
        ClipperConfig(model="m", **kw)


def test_stages_and_outputs_follow_the_config():
    cfg = ClipperConfig(model="m")
    assert [s.name for s in build_stages(cfg)] == ["zeroshot", "probe", "perplexity", "result"]
    out = outputs(cfg)
    assert list(out["selections"]) == [*selection_names(), "mid-ppl"]
    assert [g["column"] for g in out["groups"]] == ["subset_t1", "subset_t2", "knowledge"]
    off = ClipperConfig(model="m", perplexity=False, tau=2)
    assert [s.name for s in build_stages(off)] == ["zeroshot", "probe", "result"]
    assert (
        "mid-ppl" not in outputs(off)["selections"] and outputs(off)["default_selection"] == "P2+W"
    )
