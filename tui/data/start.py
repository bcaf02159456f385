"""What the start-a-run form needs: registered methods, their config fields with defaults, and a typed config."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from store.errors import ThresherError

SCALARS = (int, float, str, bool)


@dataclass(frozen=True)
class Field:
    name: str
    kind: type  # int | float | str | bool
    default: Any
    optional: bool  # "" means None
    doc: str = ""


def method_names() -> list[str]:
    """Methods the job runner knows; importing their packages registers them (no torch at import)."""
    from selection.jobs import registry

    for module, hook in (("selection.ofa.stages", None), ("selection.clipper", "register"),
                         ("selection.ofa.baselines", "register")):  # fmt: skip
        try:
            mod = __import__(module, fromlist=["_"])
            if hook and hasattr(mod, hook):
                getattr(mod, hook)()
        except ImportError:
            continue
    return [m for m in registry.methods() if m not in ("finetune", "eval", "ofa-apply")]


def _scalar(tp: Any) -> tuple[type | None, bool]:
    """(scalar type, optional) for int / float | None / str ...; (None, _) for anything else."""
    if tp in SCALARS:
        return tp, False
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in SCALARS:
            return rest[0], True
    return None, False


def config_fields(method: str) -> list[Field]:
    """The config's scalar fields in declaration order, nested configs (OFA's `encode`) as dotted
    names (`encode.encoder`); dict and list fields keep their defaults."""
    from selection.jobs import registry

    return _fields(registry.get_method(method).config_class(), "")


def _fields(cls: type, prefix: str) -> list[Field]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if f.default_factory is not dataclasses.MISSING:  # a nested config with defaults
                out += _fields(tp, f"{prefix}{f.name}.")
            continue
        kind, optional = _scalar(tp)
        if kind is None or f.default is dataclasses.MISSING:
            continue
        out.append(Field(prefix + f.name, kind, f.default, optional))
    return out


def build_config(method: str, values: dict[str, str]) -> Any:
    """Typed config from the form's text; errors name the field and the expected type."""
    from selection.jobs import registry

    cls = registry.get_method(method).config_class()
    kwargs: dict[str, Any] = {}
    for field in config_fields(method):
        raw = values.get(field.name, "").strip()
        *path, leaf = field.name.split(".")
        target = kwargs
        for part in path:
            target = target.setdefault(part, {})
        if raw == "":
            if field.optional:
                target[leaf] = None
            continue  # left blank: the config's default
        try:
            if field.kind is bool:
                target[leaf] = raw.lower() in ("1", "true", "yes", "on")
            else:
                target[leaf] = field.kind(raw)
        except ValueError:
            raise ThresherError(f"{field.name}: {raw!r} is not a {field.kind.__name__}.") from None
    hints = typing.get_type_hints(cls)
    for name, nested in list(kwargs.items()):
        if isinstance(nested, dict):  # build the nested config from its own fields
            kwargs[name] = hints[name](**nested)
    config = cls(**kwargs)
    validate = getattr(config, "validate", None)
    return validate() if callable(validate) else config


def ray_options(workers: str, gpus: str) -> Any:
    """RayOptions from the form's two fields, or None for 0 workers; errors name the field."""
    try:
        n = int(workers.strip() or "0")
    except ValueError:
        raise ThresherError(f"ray workers: {workers!r} is not a whole number.") from None
    try:
        g = float(gpus.strip() or "0")
    except ValueError:
        raise ThresherError(f"ray GPUs each: {gpus!r} is not a number.") from None
    from selection.jobs.ray_exec import RayOptions

    return RayOptions.from_workers(n, g)
