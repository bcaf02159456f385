"""Click options generated from a config's fields: name, type, default, choices and help come from
the dataclass (selection/config.py `param`), so the command line cannot drift from the config.

    @config_options(OFAConfig)
    def ofa_command(..., params): cfg = OFAConfig.from_dict(params)

The command receives `params`, the nested dict of option values (`{"encode": {...}, "k": 20}`),
ready for `from_dict` once the command has filled what the command line does not carry.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterable
from typing import Any

import click

from selection.config import FieldSpec, field_specs, flag_of, nest, scalar_type, strip_none
from store.errors import ThresherError

_PREFIX = "cfg__"  # click parameter names of generated options; never clash with a command's own


def config_options(
    cls: type, *, skip: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One option per CLI field of `cls` (nested configs flattened: `--batch-size` for
    `encode.batch_size`), in declaration order; `skip` names dotted fields the command handles."""
    skipped = set(skip)
    specs = [s for s in field_specs(cls) if s.cli and s.name not in skipped]
    flags = [flag for s in specs for flag in _flags(s)]
    clashes = sorted({f for f in flags if flags.count(f) > 1})
    if clashes:  # two nested fields with one leaf name: give one of them a `flag=`
        raise ValueError(f"{cls.__name__}: fields share the options {clashes}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flat = {s.name: kwargs.pop(_param_name(s)) for s in specs}
            return fn(*args, params=nest(flat), **kwargs)

        for spec in reversed(specs):
            wrapper = _option(spec)(wrapper)
        return wrapper

    return decorate


def _param_name(spec: FieldSpec) -> str:
    return _PREFIX + spec.name.replace(".", "__")


def _flags(spec: FieldSpec) -> list[str]:
    return [flag_of(spec.name, spec.meta), *spec.meta.get("aliases", ())]


def _option(spec: FieldSpec) -> Callable[[Callable[..., Any]], Any]:
    flags, name, meta = _flags(spec), _param_name(spec), spec.meta
    kw: dict[str, Any] = {"help": meta.get("doc") or None, "metavar": meta.get("metavar")}
    if meta.get("required"):
        kw["required"] = True
    else:
        kw["default"] = spec.default
        kw["show_default"] = spec.default not in (None, "", {}, [])
    scalar, _ = scalar_type(spec.type)
    origin = typing.get_origin(strip_none(spec.type))
    if scalar is bool:
        flag = flags[0].removeprefix("--")
        return click.option(f"--{flag}/--no-{flag}", *flags[1:], name, **kw)
    if origin is dict:
        kw.pop("show_default", None)
        kw.update(default=(), multiple=True, callback=_key_values)
        kw["metavar"] = kw["metavar"] or "KEY=VALUE"
    elif origin is list:
        kw["callback"] = _comma_list
    elif meta.get("choices"):
        kw["type"] = click.Choice(meta["choices"])
    elif scalar is not None:
        kw["type"] = scalar
    return click.option(*flags, name, **kw)


def _comma_list(ctx: click.Context, param: click.Parameter, value: Any) -> list[str] | None:
    if not value or isinstance(value, list):
        return value or None
    return [v.strip() for v in str(value).split(",") if v.strip()] or None


def _key_values(ctx: click.Context, param: click.Parameter, value: Any) -> dict[str, object]:
    return parse_key_values(tuple(value), str(param.opts[0]))


def parse_key_values(pairs: tuple[str, ...], option: str = "--engine-opt") -> dict[str, object]:
    """KEY=VALUE pairs; true/false are booleans, a VALUE that parses as JSON (numbers, lists,
    objects, null) is that value, anything else a string."""
    import contextlib
    import json

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ThresherError(f"{option} {pair!r}: write it as KEY=VALUE (e.g. device=cuda)")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
        out[key] = value
    return out
