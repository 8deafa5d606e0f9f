"""Typed configs: dataclasses loaded from YAML/JSON with field-by-field validation.

Usage::

    @dataclass
    class MyConfig(Config):
        width: int = 256
        kind: Literal["conv", "vit"] = "conv"

    cfg = MyConfig.from_yaml("configs/x.yaml")      # unknown or mistyped fields -> FourmError
    cfg.save_json("out/config.json")                 # atomic

A config file may start with ``base: other.yaml`` and hold only what differs from it (mappings merge,
lists and scalars replace; :func:`read_mapping`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from fourm.errors import FourmError
from fourm.resources import CONFIG_ROOT, resolve_path
from fourm.utils.atomic import atomic_write_text

C = TypeVar("C", bound="Config")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


ALLOW_NONFINITE = "allow_nonfinite"
"""Field metadata key: ``field(default=..., metadata={ALLOW_NONFINITE: True})`` lets a float field
hold inf / nan (every other float field must be finite)."""


def check_finite(value: float, where: str) -> float:
    """``value`` if it is a finite number; FourmError naming ``where`` for nan / inf."""
    if not math.isfinite(value):
        raise FourmError(f"invalid value for '{where}': {value!r} (expected a finite number)")
    return value


def coerce(value: Any, tp: Any, where: str, allow_nonfinite: bool = False) -> Any:
    """Check ``value`` against the type annotation ``tp`` and convert where lossless (int -> float,
    list -> tuple, dict -> dataclass). Raises FourmError naming ``where`` on a mismatch. Floats must
    be finite unless ``allow_nonfinite``.

    Dispatches on the kind of ``tp``: unions (:func:`_coerce_union`), literals, dataclasses
    (:func:`_coerce_dataclass`), mappings (:func:`_coerce_mapping`), lists and tuples
    (:func:`_coerce_sequence`), then plain types (:func:`_coerce_plain`)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, where, allow_nonfinite)
    if origin is Literal:
        return _coerce_literal(value, tp, where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _coerce_dataclass(value, tp, where)
    if origin is dict or tp is dict:
        return _coerce_mapping(value, tp, where, allow_nonfinite)
    if origin in (list, tuple) or tp in (list, tuple):
        return _coerce_sequence(value, tp, where, allow_nonfinite)
    return _coerce_plain(value, tp, where, allow_nonfinite)


def _coerce_union(value: Any, tp: Any, where: str, allow_nonfinite: bool) -> Any:
    """``value`` as the first member of the union ``tp`` that accepts it (None for an optional).
    A non-finite float is refused as such ("expected a finite number"), not as a union mismatch."""
    if isinstance(value, float) and not allow_nonfinite:
        check_finite(value, where)
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, where, allow_nonfinite)
        except FourmError:
            pass
    raise FourmError(f"invalid value for '{where}': {value!r} (expected {_type_name(tp)})")


def _coerce_literal(value: Any, tp: Any, where: str) -> Any:
    """``value`` if it is one of the choices of ``Literal[...]`` type ``tp``."""
    if value not in get_args(tp):
        choices = ", ".join(repr(a) for a in get_args(tp))
        raise FourmError(f"invalid value for '{where}': {value!r} (expected one of {choices})")
    return value


def _coerce_dataclass(value: Any, tp: type, where: str) -> Any:
    """An instance of dataclass ``tp``: ``value`` itself, or built field by field from a mapping."""
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise FourmError(f"invalid value for '{where}': expected a mapping, got {value!r}")
    return _from_dict(tp, value, where + ".")


def _coerce_mapping(value: Any, tp: Any, where: str, allow_nonfinite: bool) -> dict:
    """A new dict from mapping ``value``, keys and values checked against ``dict[K, V]`` (if given)."""
    if not isinstance(value, dict):
        raise FourmError(f"invalid value for '{where}': expected a mapping, got {value!r}")
    args = get_args(tp)
    if not args:
        return dict(value)
    return {
        coerce(k, args[0], f"{where}.{k}", allow_nonfinite): coerce(
            v, args[1], f"{where}.{k}", allow_nonfinite
        )
        for k, v in value.items()
    }


def _coerce_sequence(value: Any, tp: Any, where: str, allow_nonfinite: bool) -> list | tuple:
    """A list or tuple (as ``tp`` says) from list/tuple ``value``, items checked one by one; a
    fixed-length ``tuple[A, B]`` needs exactly that many items."""
    if not isinstance(value, (list, tuple)):
        raise FourmError(f"invalid value for '{where}': expected a list, got {value!r}")
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise FourmError(f"invalid value for '{where}': expected {len(args)} items, got {len(value)}")
        return tuple(
            coerce(v, a, f"{where}[{i}]", allow_nonfinite) for i, (v, a) in enumerate(zip(value, args))
        )
    item_tp = args[0] if args else Any
    items = [coerce(v, item_tp, f"{where}[{i}]", allow_nonfinite) for i, v in enumerate(value)]
    return tuple(items) if (origin is tuple or tp is tuple) else items


_EXPECTED = {int: "an integer", bool: "true or false", str: "a string"}
"""How an error names the plain types that are checked strictly (no conversion)."""


def _coerce_plain(value: Any, tp: Any, where: str, allow_nonfinite: bool) -> Any:
    """``value`` checked against a plain type: a float from any number (not a bool; finite unless
    ``allow_nonfinite``), int / bool / str exactly (a bool is no int), any other class by
    ``isinstance``; anything else (e.g. a ``TypeVar``) passes unchecked."""
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FourmError(f"invalid value for '{where}': {value!r} (expected a number)")
        try:
            value = float(value)
        except OverflowError:  # an int too big for a float
            raise FourmError(f"invalid value for '{where}': {value!r} (expected a finite number)") from None
        return value if allow_nonfinite else check_finite(value, where)
    if tp in (int, bool, str):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise FourmError(f"invalid value for '{where}': {value!r} (expected {_EXPECTED[tp]})")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise FourmError(f"invalid value for '{where}': {value!r} (expected {_type_name(tp)})")
    return value


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FourmError(
            f"unknown config field '{prefix}{unknown[0]}' for {cls.__name__} (known: {', '.join(fields)})"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], prefix + name, bool(f.metadata.get(ALLOW_NONFINITE)))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FourmError(f"missing config field '{prefix}{name}' for {cls.__name__}")
    try:
        return cls(**kwargs)
    except FourmError:
        raise
    except (TypeError, ValueError) as e:
        raise FourmError(f"invalid {cls.__name__}: {e}") from None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples and paths -> plain JSON-compatible values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _first_line(error: BaseException) -> str:
    text = str(error)
    return (text.splitlines() or [type(error).__name__])[0][:200]


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; FourmError naming ``what`` and ``path`` when it is missing, a
    directory, unreadable or not UTF-8 text (e.g. a binary file)."""
    path = Path(path)
    if not path.is_file():
        raise FourmError(f"{what} not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FourmError(f"cannot read {what} {path}: {e.strerror or _first_line(e)}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FourmError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}; a binary file?)"
        ) from None
    if "\x00" in text:
        raise FourmError(f"{what} {path} is not text (it holds NUL bytes; a binary file?)")
    return text


def read_json_value(path: str | Path, what: str = "JSON file", corrupt: str | None = None) -> Any:
    """Parse the JSON file ``path``; FourmError (one line, naming it) for missing / binary / malformed.

    ``corrupt``: the wording of the file's owner for a file that exists but cannot be read or parsed,
    e.g. ``"corrupt checkpoint file"`` -> ``"corrupt checkpoint file <path>: <reason>"``."""
    if corrupt is not None:
        path = Path(path)
        if not path.is_file():
            raise FourmError(f"{what} not found: {path}")
        try:
            return json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise FourmError(f"{corrupt} {path}: {_first_line(e)}") from None
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise FourmError(f"malformed {what} {path}: {_first_line(e)}") from None


def read_json_object(path: str | Path, what: str = "JSON file", corrupt: str | None = None) -> dict:
    """Like :func:`read_json_value`, but the file must hold a JSON object."""
    data = read_json_value(path, what, corrupt)
    if not isinstance(data, dict):
        if corrupt is not None:
            raise FourmError(f"{corrupt} {path}: expected a JSON object, got {type(data).__name__}")
        raise FourmError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_yaml_mapping(path: str | Path, what: str = "YAML file") -> dict:
    """Parse the YAML file ``path``, which must hold a mapping (an empty file is ``{}``)."""
    text = read_text_file(path, what)
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise FourmError(f"malformed {what} {path}: {_first_line(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FourmError(f"{what} {path} must hold a mapping, got {type(data).__name__}")
    return data


BASE_KEY = "base"
"""A config file may name another one under this key and hold only what differs (see :func:`read_mapping`)."""


def merge_mappings(base: dict, update: dict) -> dict:
    """``update`` laid over ``base``: mappings merge key by key (recursively); anything else in
    ``update`` (a scalar, a list, null) replaces the base's value. Neither input is changed."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_mappings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_plain_mapping(path: Path, what: str) -> dict:
    if path.suffix in (".yaml", ".yml"):
        return read_yaml_mapping(path, what)
    text = read_text_file(path, what)
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise FourmError(f"malformed {what} {path}: {_first_line(e)}") from None
    if not isinstance(data, dict):
        raise FourmError(f"{what} {path} must hold a mapping, got {type(data).__name__}")
    return data


def resolve_base(ref: str, including: Path) -> Path | None:
    """The file a ``base:`` entry of ``including`` names: relative to ``including``'s folder first,
    then as a path from the working directory or a shipped ``configs/...`` file, then as a name under
    the shipped configs (``train/debug.yaml``); None when none exists."""
    ref_path = Path(ref).expanduser()
    candidates = [ref_path] if ref_path.is_absolute() else [including.parent / ref_path, resolve_path(ref_path),
                                                           CONFIG_ROOT / ref_path]
    return next((c for c in candidates if c.is_file()), None)


def _read_with_base(path: Path, what: str, chain: tuple[Path, ...]) -> dict:
    data = _read_plain_mapping(path, what)
    if BASE_KEY not in data:
        return data
    ref = data.pop(BASE_KEY)
    if not isinstance(ref, str) or not ref.strip():
        raise FourmError(f"{what} {path}: '{BASE_KEY}' must name a config file, got {ref!r}")
    base_path = resolve_base(ref, path)
    if base_path is None:
        raise FourmError(
            f"{what} {path}: base '{ref}' not found (looked next to the file, in the working directory "
            "and in the shipped configs)"
        )
    seen = (*chain, path)
    if any(base_path.resolve() == p.resolve() for p in seen):
        raise FourmError(f"{what} {path}: '{BASE_KEY}' cycle: " + " -> ".join(str(p) for p in (*seen, base_path)))
    return merge_mappings(_read_with_base(base_path, what, seen), data)


def read_mapping(path: str | Path, what: str = "config file") -> dict:
    """Read a YAML or JSON file that must hold a mapping; clear errors for missing/malformed files.

    ``base: other.yaml`` in the file includes another config (a path relative to this file, or a
    shipped config such as ``configs/train/debug.yaml``); the file then holds only what differs:
    mappings merge key by key, lists and scalars replace (:func:`merge_mappings`). A base may have
    its own base; a cycle is an error."""
    return _read_with_base(Path(path), what, ())


class Config:
    """Mixin for dataclass configs: ``from_dict``, ``from_yaml``/``from_json``, ``to_dict``, ``save_json``.

    Subclasses may define ``validate(self)`` raising FourmError; it runs after loading.
    """

    @classmethod
    def from_dict(cls: type[C], data: dict) -> C:
        cfg = _from_dict(cls, data)
        cfg.validate()
        return cfg

    @classmethod
    def from_file(cls: type[C], path: str | Path) -> C:
        """Load from a .yaml/.yml or .json file."""
        try:
            return cls.from_dict(read_mapping(path))
        except FourmError as e:
            raise FourmError(f"{path}: {e}") from None

    from_yaml = from_file
    from_json = from_file

    def validate(self) -> None:
        """Check cross-field constraints; raise FourmError naming the field."""

    def to_dict(self) -> dict:
        return to_jsonable(self)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")


def flatten_mapping(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b.c": leaf}`` (lists and other non-mappings are leaves)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_mapping(value, f"{name}."))
        else:
            out[name] = value
    return out


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` CLI overrides (values parsed as YAML) to a nested mapping copy."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise FourmError(f"malformed override '{item}' (expected key=value, e.g. optim.lr=1e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string; a number is what anyone means
                value = float(value)
            except ValueError:
                pass
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[_list_index(node, p, item)] if isinstance(node, list) else node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise FourmError(f"override '{item}': '{p}' is not a section")
        if isinstance(node, list):
            node[_list_index(node, parts[-1], item)] = value
        else:
            node[parts[-1]] = value
    return out


def _list_index(node: list, part: str, item: str) -> int:
    """Index ``part`` of list ``node`` (``data.datasets.0.path``), checked against its length."""
    if not part.isdigit() or int(part) >= len(node):
        raise FourmError(f"override '{item}': '{part}' is not an index of a list of {len(node)} items")
    return int(part)
