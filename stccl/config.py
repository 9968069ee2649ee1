"""Frozen-dataclass configs loaded from YAML.

Unknown keys and values of the wrong type are errors that name the file and
the key: a typo in a params file must never silently fall back to a default.

    @dataclass(frozen=True)
    class MetricConfig:
        lr: float = 1e-3

    cfg = load_config(MetricConfig, "params/metric_tiny.yaml", overrides={"lr": 3e-4})
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from stccl.io import StcclError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it (lists -> tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except StcclError as exc:
                errors.append(str(exc))
        raise StcclError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise StcclError(f"{where}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise StcclError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise StcclError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise StcclError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise StcclError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if not isinstance(value, bool):
            raise StcclError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StcclError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StcclError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise StcclError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise StcclError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and bad types."""
    if not isinstance(data, dict):
        raise StcclError(f"{where}: expected a mapping of options, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise StcclError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; "
            f"known keys: {sorted(fields)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}: key '{k}'") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise StcclError(f"{where}: {exc}") from None


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StcclError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StcclError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise StcclError(f"{path}: expected a mapping of options at the top level")
    return data


def merge_overrides(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` on top; dotted keys (a.b) and nested mappings go into sections."""
    out = dict(base)
    for key, val in overrides.items():
        head, _, tail = key.partition(".")
        if tail:
            out[head] = merge_overrides(dict(out.get(head) or {}), {tail: val})
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], val)
        else:
            out[key] = val
    return out


def parse_sets(items: list[str] | None) -> dict:
    """`--set KEY=VALUE` arguments -> {KEY: YAML-parsed VALUE}; KEY may be dotted (loss.tau=0.1)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StcclError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise StcclError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict | None = None) -> T:
    """Load `cls` from a YAML file (optional) and apply `overrides` (dotted keys allowed) on top."""
    data = load_yaml(path) if path is not None else {}
    data = merge_overrides(data, overrides or {})
    return from_dict(cls, data, where=str(path) if path is not None else "config")


def to_dict(cfg: Any) -> dict:
    """Plain-JSON view of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def replace(cfg: T, **changes: Any) -> T:
    """`dataclasses.replace` with the same validation as loading."""
    data = to_dict(cfg)
    data.update(changes)
    return from_dict(type(cfg), data)
