"""Check parsed JSON against ``TypedDict`` definitions, with messages that name the file and the key.

:func:`check` walks a value and its type together (``TypedDict``, ``dict[str, X]``, ``list[X]``,
unions, ``Literal``, ``Any``, ``int``/``float``/``str``/``bool``) and raises :class:`SchemaError` at
the first place where they disagree, e.g. ``results/cpu/binary.json: key 'models.resnet18-scratch.runs[0].seed':
expected an integer, found str '0'``. Keys a definition does not list are allowed, so an older
reader accepts what a newer writer adds.
"""

import types
import typing
from pathlib import Path
from typing import Any, Literal, NotRequired, Union


class SchemaError(ValueError):
    """A JSON file does not match its definition."""

    def __init__(self, path: Path | str, key: str, expected: str, found: Any = None, fix: str = ""):
        self.path, self.key, self.expected = Path(path), key, expected
        found_text = "" if found is None else f", found {_describe(found)}"
        super().__init__(f"{path}: key {key or '(top level)'!r}: expected {expected}{found_text}. {fix}".strip())


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and typing.is_typeddict(tp):
        return f"an object ({tp.__name__})"
    return {float: "a number", int: "an integer", str: "a string", bool: "true/false"}.get(
        tp, str(tp).replace("typing.", "")
    )


def check(value: Any, tp: Any, key: str, path: Path, partial: bool = False) -> None:
    """Raise :class:`SchemaError` at the first place where ``value`` does not match ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return check(value, option, key, path)
            except SchemaError as err:
                errors.append(err)
        # report the deepest problem when the value has the right container type
        deepest = max(errors, key=lambda e: len(e.key))
        if deepest.key != key:
            raise deepest
        raise SchemaError(path, key, " or ".join(_type_name(a) for a in args), value)
    if tp is type(None):
        if value is not None:
            raise SchemaError(path, key, "null", value)
        return
    if origin is Literal:
        if value not in args:
            raise SchemaError(path, key, f"one of {list(args)}", value)
        return
    if isinstance(tp, type) and typing.is_typeddict(tp):
        if not isinstance(value, dict):
            raise SchemaError(path, key, _type_name(tp), value)
        hints = typing.get_type_hints(tp)
        if not partial:  # the first missing key in declaration order
            missing = [k for k in hints if k in tp.__required_keys__ and k not in value]
            if missing:
                raise SchemaError(path, _join(key, missing[0]), f"a key of {tp.__name__} (missing)")
        for k, v in value.items():
            if k in hints:  # extra keys are allowed: older readers ignore what newer writers add
                check(v, _strip_required(hints[k]), _join(key, k), path)
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(path, key, "an object", value)
        for k, v in value.items():
            check(v, args[1], _join(key, k), path)
        return
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(path, key, "a list", value)
        for i, v in enumerate(value):
            check(v, args[0], f"{key}[{i}]", path)
        return
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise SchemaError(path, key, _type_name(tp), value)


def _strip_required(tp: Any) -> Any:
    while typing.get_origin(tp) in (typing.Required, NotRequired):
        tp = typing.get_args(tp)[0]
    return tp


def _join(key: str, child: Any) -> str:
    return f"{key}.{child}" if key else str(child)
