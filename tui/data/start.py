"""What the start-a-run form needs: the methods it offers, their config fields (default, type and
the one-line doc each field declares in its dataclass), and a validated config from the form's text.

The fields come from `selection.config.field_specs`, the same source as the CLI's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from store.errors import ThresherError


@dataclass(frozen=True)
class Field:
    name: str  # dotted for nested configs: "encode.batch_size"
    kind: type  # int | float | str | bool
    default: Any
    optional: bool  # "" means None
    doc: str = ""  # the field's documentation (its help text on the command line too)
    choices: tuple[str, ...] | None = None  # the allowed values of a str field


def method_names() -> list[str]:
    """Methods that select from a dataset (the registry's `selection` kind), in name order."""
    from selection.jobs import registry

    return registry.methods(kind="selection")


def config_fields(method: str) -> list[Field]:
    """The config's scalar fields in declaration order, nested configs (OFA's `encode`) as dotted
    names (`encode.encoder`); dict and list fields keep their defaults."""
    from selection.config import field_specs, scalar_type
    from selection.jobs import registry

    out = []
    for spec in field_specs(registry.get_method(method).config_class()):
        kind, optional = scalar_type(spec.type)
        if kind is None:
            continue
        out.append(
            Field(spec.name, kind, spec.default, optional, spec.doc, spec.meta.get("choices"))
        )
    return out


def build_config(method: str, values: dict[str, str]) -> Any:
    """Validated config from the form's text (blank = the default, or None where allowed);
    errors name the field and the expected type, or say what the config's validation said."""
    from selection.config import build, nest
    from selection.jobs import registry

    typed: dict[str, Any] = {}
    for field in config_fields(method):
        raw = values.get(field.name, "").strip()
        if raw == "":
            if field.optional:
                typed[field.name] = None
            continue  # left blank: the config's default
        try:
            if field.kind is bool:
                typed[field.name] = raw.lower() in ("1", "true", "yes", "on")
            else:
                typed[field.name] = field.kind(raw)
        except ValueError:
            raise ThresherError(f"{field.name}: {raw!r} is not a {field.kind.__name__}.") from None
    # build(), not config_from_params(): its advice is for run.json params, not a form
    return build(registry.get_method(method).config_class(), nest(typed))


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
