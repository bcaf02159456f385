"""Method registry: a method name -> entry points for its stages and its config dataclass.

`BUILTIN` is the one table of the methods Thresher ships; `register_method` adds others (a test's
method, a plug-in). Entry points are "module:attribute" strings so run.json can carry them and a
detached worker process imports the method without the CLI (and without this registry).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from typing import Any

from store.errors import ThresherError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    build_stages: str  # "module:function", function(config) -> list[Stage]
    config_cls: str  # "module:Class", a dataclass
    outputs: dict[str, Any] | str | None = None
    """run.json["outputs"]: a dict, None, or "module:attr" naming a dict or a function(config)."""
    kind: str = "selection"
    """selection (picks samples from a dataset: the TUI's start form offers it) | apply (needs a
    trained selector) | training | evaluation."""

    def config_class(self) -> type:
        return load_entry(self.config_cls)

    def outputs_for(self, config: Any) -> dict[str, Any] | None:
        if isinstance(self.outputs, str):
            found = load_entry(self.outputs)
            return found(config) if callable(found) else found
        return self.outputs


def _baseline(name: str) -> MethodSpec:
    return MethodSpec(
        f"baseline:{name}",
        "selection.ofa.baselines:build_baseline_stages",
        "selection.ofa.config:BaselineConfig",
        "selection.ofa.baselines:outputs_for",
    )


# Every method Thresher ships, in one place. Entry points are strings: nothing is imported until a
# run is created or a form lists a config's fields, so `thresher --help` stays light.
BUILTIN: tuple[MethodSpec, ...] = (
    MethodSpec(
        "ofa",
        "selection.ofa.stages:build_ofa_stages",
        "selection.ofa.config:OFAConfig",
        "selection.ofa.stages:OUTPUTS",
    ),
    MethodSpec(
        "ofa-apply",
        "selection.ofa.stages:build_apply_stages",
        "selection.ofa.config:OFAApplyConfig",
        "selection.ofa.stages:OUTPUTS",
        kind="apply",
    ),
    *(_baseline(name) for name in ("random", "clip-score", "typiclust", "semdedup")),
    MethodSpec(
        "clipper",
        "selection.clipper.stages:build_stages",
        "selection.clipper.config:ClipperConfig",
        "selection.clipper.result:outputs",
    ),
    MethodSpec(
        "finetune",
        "selection.finetune.train:build_stages",
        "selection.finetune.config:FinetuneConfig",
        None,
        kind="training",
    ),
    MethodSpec(
        "eval",
        "selection.finetune.evaluate:build_stages",
        "selection.finetune.evaluate:EvalConfig",
        None,
        kind="evaluation",
    ),
)

_METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in BUILTIN}


def register_method(
    name: str,
    build_stages: str,
    config_cls: str,
    outputs: dict[str, Any] | str | None = None,
    kind: str = "selection",
) -> MethodSpec:
    """Add a method that is not in BUILTIN (a test's or a plug-in's), or replace one by name."""
    for entry in (build_stages, config_cls) + ((outputs,) if isinstance(outputs, str) else ()):
        if ":" not in entry:
            raise ValueError(f"entry point {entry!r} must look like 'package.module:attribute'")
    spec = MethodSpec(name, build_stages, config_cls, outputs, kind)
    _METHODS[name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(sorted(_METHODS)) or "none registered"
        raise ThresherError(f"unknown method {name!r} (known: {known}).") from None


def methods(kind: str | None = None) -> list[str]:
    """Known method names, sorted; only those of one `kind` when given."""
    return sorted(n for n, spec in _METHODS.items() if kind is None or spec.kind == kind)


def load_entry(entry: str) -> Any:
    """Import "module:attr.sub" and return the attribute; errors name the entry point."""
    module_name, _, attr = entry.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ThresherError(
            f"cannot import {module_name!r} for entry point {entry!r}: {exc}. Is Thresher (and the "
            "package providing this method) installed in this Python?"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ThresherError(f"entry point {entry!r}: {module_name} has no {attr!r}.") from None
    return obj


def config_to_params(config: Any) -> dict[str, Any]:
    """A config dataclass -> the JSON-clean dict stored as run.json["params"]."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(
            f"a method config must be a dataclass instance, got {type(config).__name__}"
        )
    # Through JSON so tuples become lists exactly as they will read back from run.json.
    return json.loads(json.dumps(dataclasses.asdict(config), sort_keys=True))


def config_from_params(cls: type, params: dict[str, Any]) -> Any:
    """Rebuild the config: `cls.from_dict(params)` for a `Config`, else `cls(**params)`."""
    from selection.config import build

    try:
        return build(cls, params)
    except TypeError as exc:
        raise ThresherError(
            f"run.json params do not fit {cls.__name__}: {exc}. The run was made by another "
            "version of this method; start a new run (another --name)."
        ) from exc
