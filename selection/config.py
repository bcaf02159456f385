"""The one contract every method config follows: validated on construction, strict `from_dict`,
each field documented once (in its metadata, which the CLI options and the TUI form read).

A config is a dataclass that extends `Config` and declares its fields with `param(...)`:

    @dataclass
    class OFAConfig(Config):
        k: int = param(20, "k-means clusters.")

`OFAConfig(k=1)` raises the `ThresherError` that `validate()` raises; `from_dict` rebuilds nested
configs and names unknown keys (a typo in run.json must not silently become a default).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from store.errors import ThresherError

if TYPE_CHECKING:
    from typing import Self


def param(
    default: Any,
    doc: str,
    *,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
    required: bool = False,
    cli: bool = True,
) -> Any:
    """A documented config field. `flag` overrides the CLI option name (default `--field-name`),
    `aliases` adds older spellings, `choices` constrains a str, `required` makes the CLI demand it,
    `cli=False` keeps a field off the command line (filled by the command itself). Mutable defaults
    (lists, dicts, nested configs) are copied per instance."""
    meta = {
        "doc": " ".join(doc.split()),
        "flag": flag,
        "aliases": tuple(aliases),
        "choices": tuple(choices) if choices is not None else None,
        "metavar": metavar,
        "required": required,
        "cli": cli,
    }
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(name: str, meta: Mapping[str, Any]) -> str:
    """The command-line option of a field (`name` may be dotted: `encode.batch_size`)."""
    return meta.get("flag") or "--" + name.rsplit(".", 1)[-1].replace("_", "-")


@dataclass
class Config:
    """Base of every method config (OFA, CLIPPER, baselines, fine-tune, eval)."""

    RETIRED: ClassVar[frozenset[str]] = frozenset()
    """Keys older versions wrote to run.json and this one ignores (so old runs still resume)."""

    def __post_init__(self) -> None:
        self._check_choices()
        self.validate()

    def _check_choices(self) -> None:
        """Every `param(choices=...)` option the user sets holds one of them (None: left off).
        Fields off the command line (`cli=False`) are the config's own to check."""
        for f in dataclasses.fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices is None or value is None or value in choices or not f.metadata["cli"]:
                continue
            off = " (or leave it off)" if f.default is None else ""
            raise ThresherError(
                f"{flag_of(f.name, f.metadata)} {value!r} is not one of {', '.join(choices)}{off}"
            )

    def validate(self) -> Self:
        """Raise a ThresherError naming the option and the fix; return self. Called on construction."""
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from run.json["params"] (or the TUI form); unknown keys are an error naming them."""
        if not isinstance(data, Mapping):
            raise ThresherError(f"{cls.__name__}: expected a mapping of fields, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known - cls.RETIRED)
        if unknown:
            raise ThresherError(
                f"{cls.__name__}: unknown keys {unknown}; known: {sorted(known)}. The params were "
                "written by another version or mistyped."
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue  # retired
            nested = hints.get(key)
            if (
                isinstance(nested, type)
                and issubclass(nested, Config)
                and isinstance(value, Mapping)
            ):
                value = nested.from_dict(value)
            kwargs[key] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field of a config, nested configs flattened: what the CLI and the TUI form show."""

    name: str  # dotted for nested configs: "encode.batch_size"
    type: Any  # the resolved annotation: int, float | None, list[str] | None, dict[str, Any], ...
    default: Any
    doc: str
    meta: Mapping[str, Any]

    @property
    def cli(self) -> bool:
        return bool(self.meta.get("cli", True))


def field_specs(cls: type, prefix: str = "") -> list[FieldSpec]:
    """The leaf fields of a config dataclass in declaration order; a nested dataclass field with a
    default (OFA's `encode`) contributes its own fields as `encode.<name>`. Works for any dataclass
    (a third-party method's config without `param` metadata gets empty docs); fields without a
    default are left out (nothing to show)."""
    hints = typing.get_type_hints(cls)
    out: list[FieldSpec] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints.get(f.name)
        has_factory = f.default_factory is not dataclasses.MISSING
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if has_factory:
                out += field_specs(tp, f"{prefix}{f.name}.")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif has_factory:
            factory: Any = f.default_factory
            default = factory()
        else:
            continue
        out.append(FieldSpec(prefix + f.name, tp, default, doc_of(f), f.metadata))
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"encode.batch_size": 16, "k": 8} -> {"encode": {"batch_size": 16}, "k": 8}."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *path, leaf = dotted.split(".")
        target = out
        for part in path:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


def build(cls: type, params: Mapping[str, Any]) -> Any:
    """A validated config from (nested) params: `cls.from_dict` for a `Config`, else `cls(**params)`
    with nested dataclasses built from their dicts (a third-party method's plain dataclass)."""
    from_dict = getattr(cls, "from_dict", None)
    if from_dict is not None:
        return from_dict(params)
    hints = typing.get_type_hints(cls)
    kwargs = {
        k: build(hints[k], v)
        if isinstance(v, Mapping) and dataclasses.is_dataclass(hints.get(k))
        else v
        for k, v in params.items()
    }
    config = cls(**kwargs)
    validate = getattr(config, "validate", None)
    return validate() if callable(validate) else config


SCALARS = (int, float, str, bool)


def strip_none(tp: Any) -> Any:
    """`int | None` -> int; anything else unchanged."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def scalar_type(tp: Any) -> tuple[type | None, bool]:
    """(scalar type, optional) for int / float | None / str ...; (None, False) for anything else."""
    inner = strip_none(tp)
    if inner in SCALARS:
        return inner, inner is not tp
    return None, False


def doc_of(field: dataclasses.Field[Any]) -> str:
    """The field's one-line documentation ("" for a field declared without `param`)."""
    return str(field.metadata.get("doc", ""))
