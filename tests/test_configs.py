"""Every method config keeps one contract (selection/config.py): validated on construction, strict
from_dict, each field documented once; the CLI's options and the TUI form are made from the fields."""

from __future__ import annotations

import dataclasses

import click
import pytest

from selection.config import Config, field_specs
from selection.jobs.registry import BUILTIN, config_from_params, config_to_params
from store.errors import ThresherError
from tui.cli import cli

MINIMAL = {"clipper": {"model": "m"}, "eval": {"model": "m"}, "finetune": {"manifest": "x.json"}}
COMMANDS = {  # command path -> the config class it is generated from
    ("run", "ofa"): "ofa",
    ("run", "baseline"): "baseline:random",
    ("ofa", "apply"): "ofa-apply",
    ("run", "clipper"): "clipper",
    ("train",): "finetune",
    ("eval",): "eval",
}
SPECS = {spec.name: spec for spec in BUILTIN}


@pytest.mark.parametrize("method", sorted(SPECS))
def test_each_config_validates_on_construction_and_round_trips_strictly(method):
    cls = SPECS[method].config_class()
    assert issubclass(cls, Config)
    config = cls(**MINIMAL.get(method, {}))
    assert config.validate() is config  # not None: the start form once hung on that
    back = config_from_params(cls, config_to_params(config))
    assert back == config
    with pytest.raises(ThresherError, match=r"unknown keys \['colour'\]"):
        cls.from_dict({**config_to_params(config), "colour": "red"})
    for spec in field_specs(cls):
        assert spec.doc, f"{cls.__name__}.{spec.name} has no documentation"


def test_bad_values_raise_at_construction_for_every_kind():
    from selection.clipper.config import ClipperConfig
    from selection.finetune.config import FinetuneConfig
    from selection.ofa.config import BaselineConfig, OFAConfig

    for make, option in [
        (lambda: OFAConfig(k=1), "--k"),
        (lambda: BaselineConfig(name="nope"), "unknown baseline"),
        (lambda: ClipperConfig(model="m", tau=3), "--tau"),
        (lambda: FinetuneConfig(manifest="x", lr_schedule="zigzag"), "--lr-schedule"),
        (lambda: OFAConfig.from_dict({"encode": {"batch_size": 1, "colour": 1}}), "colour"),
        # choices are checked for every field, nested ones included (normalize was not)
        (lambda: OFAConfig.from_dict({"encode": {"normalize": "Per-Tower"}}), "--normalize"),
        (lambda: ClipperConfig(model="m", engine="tgi"), "--engine 'tgi' is not one of"),
        (lambda: FinetuneConfig(manifest="x", quantize="8bit"), "--quantize"),
    ]:
        with pytest.raises(ThresherError, match=option):
            make()


def test_retired_keys_of_older_runs_are_ignored_on_resume():
    from selection.ofa.config import OFAConfig

    old_params = {**config_to_params(OFAConfig(k=5)), "seed": 3}  # what OFA runs used to store
    assert OFAConfig.from_dict(old_params) == OFAConfig(k=5)


def test_builtin_table_names_every_baseline():
    from selection.ofa.config import BASELINES

    assert {n for n in SPECS if n.startswith("baseline:")} == {f"baseline:{b}" for b in BASELINES}


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for part in path:
        assert isinstance(command, click.Group)
        command = command.commands[part]
    return command


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_cli_options_are_the_config_fields_with_their_defaults(path):
    command = _command(path)
    options = {p.name: p for p in command.params if p.name and p.name.startswith("cfg__")}
    cls = SPECS[COMMANDS[path]].config_class()
    for spec in field_specs(cls):
        option = options.pop("cfg__" + spec.name.replace(".", "__"), None)
        if option is None:  # left to the command (e.g. the seed, ofa apply's encoder)
            assert not spec.cli or path == ("ofa", "apply"), spec.name
            continue
        assert option.help == spec.doc
        if option.required:
            continue
        default = option.default if option.default != () else {}
        assert default == spec.default, (spec.name, option.default, spec.default)
    assert not options, f"options with no config field: {sorted(options)}"


def test_the_start_form_shows_each_field_with_its_doc():
    from tui.data.start import build_config, config_fields, method_names

    assert "ofa" in method_names() and "finetune" not in method_names()
    fields = {f.name: f for f in config_fields("clipper")}
    assert fields["assignment"].choices == ("random", "balanced")
    assert fields["m"].doc.startswith("W queries per demonstration")
    with pytest.raises(ThresherError, match="clipper: needs --model"):
        build_config("clipper", {})  # validated, never a silent None
    config = build_config("clipper", {"model": "m", "limit": "7"})
    assert dataclasses.asdict(config)["limit"] == 7 and config.validate() is config
