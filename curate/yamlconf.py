"""The YAML reader and the dataclass coercion that every config kind uses (pipelines, trainer configs,
corruption conditions, ablations, selections): a YAML mapping in, a validated dataclass out, or a
:class:`~curate.errors.ConfigError` that names the file, the key and what was expected."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to a dataclass field type (str, int, float, bool, list, dict, Optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if tp is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # YAML's .nan/.inf: no parameter means "unbounded" by infinity
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def did_you_mean(unknown: set[str], valid: set[str] | list[str]) -> str:
    """`` ('modle' → 'model'?)`` for the unknown keys that look like a valid one; "" when none does."""
    import difflib

    pairs = [(k, m[0]) for k in sorted(unknown) if (m := difflib.get_close_matches(str(k), list(valid), 1))]
    return f" (did you mean {', '.join(f'{m!r} for {k!r}' for k, m in pairs)}?)" if pairs else ""


def build_dataclass(cls: type, params: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(params) - set(fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown parameter(s) {', '.join(sorted(unknown))}{did_you_mean(unknown, set(fields))}; "
            f"valid: {', '.join(sorted(fields)) or 'none'}"
        )
    kw = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in params.items()}
    try:
        return cls(**kw)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


MAX_YAML_NODES = 200_000  # a config is a few hundred nodes; a 1 KB alias bomb expands to billions


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (shared nodes counted each time)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(c, memo) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        n = 1
    memo[key] = n
    return n


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing a document whose aliases expand past ``MAX_YAML_NODES`` (a "billion laughs"
    document, which would cost minutes and gigabytes in whatever walks it)."""

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise yaml.YAMLError(f"its aliases expand to more than {MAX_YAML_NODES:,} values")
        return super().construct_document(node)


def load_yaml(text: str) -> Any:
    """YAML text → Python values: the safe loader, with aliases bounded (every YAML curate reads goes here)."""
    return yaml.load(text, Loader=_BoundedLoader)


def parse_set(items: list[str] | None, shape: str = "KEY=VALUE", option: str = "--set") -> list[tuple[str, Any]]:
    """The one ``KEY=VALUE`` option parser (``--set``, ``--eval``): each ``KEY=VALUE`` → ``(KEY, value)``, the
    value read as YAML (``3``, ``true``, ``[a, b]``) or, when it is not YAML (a strptime format ``%d/%m/%Y``), as
    its text. ``shape`` names the form the command's ``option`` expects, for the error. Each caller says what a
    KEY addresses."""
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r}: expected {shape}")
        try:
            parsed = load_yaml(value)
        except yaml.YAMLError:
            parsed = value
        out.append((key.strip(), parsed))
    return out


def read_yaml_mapping(path: str | Path, what: str = "config", error: type[Exception] = ConfigError) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file → ``{}``), or ``error`` naming the file and problem."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} file not found")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: a {what} is a YAML mapping at the top level, got {type(raw).__name__}")
    return raw


__all__ = ["build_dataclass", "load_yaml", "parse_set", "read_yaml_mapping"]
