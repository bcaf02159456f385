"""Method registry: a method name -> entry points for its stages and its config dataclass.

Entry points are "module:attribute" strings so run.json can carry them and a detached worker
process imports the method without the CLI (and without this registry being filled).
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
    outputs: dict[str, Any] | str | None = None  # run.json["outputs"], or "module:function"(config)

    def config_class(self) -> type:
        return load_entry(self.config_cls)

    def outputs_for(self, config: Any) -> dict[str, Any] | None:
        if isinstance(self.outputs, str):
            return load_entry(self.outputs)(config)
        return self.outputs


_METHODS: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    build_stages: str,
    config_cls: str,
    outputs: dict[str, Any] | str | None = None,
) -> MethodSpec:
    """Register (or re-register, e.g. on module reload) a method under `name`."""
    for entry in (build_stages, config_cls) + ((outputs,) if isinstance(outputs, str) else ()):
        if ":" not in entry:
            raise ValueError(f"entry point {entry!r} must look like 'package.module:attribute'")
    spec = MethodSpec(name, build_stages, config_cls, outputs)
    _METHODS[name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(sorted(_METHODS)) or "none registered"
        raise ThresherError(f"unknown method {name!r} (known: {known}).") from None


def methods() -> list[str]:
    return sorted(_METHODS)


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
    """Rebuild the config: `cls.from_dict(params)` when the class has one, else `cls(**params)`."""
    from_dict = getattr(cls, "from_dict", None)
    try:
        return from_dict(params) if from_dict is not None else cls(**params)
    except TypeError as exc:
        raise ThresherError(
            f"run.json params do not fit {cls.__name__}: {exc}. The run was made by another "
            "version of this method; start a new run (another --name)."
        ) from exc
