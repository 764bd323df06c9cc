"""OTLP/JSON AnyValue and attribute lists as plain values, and JSON text of values."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import orjson

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1  # the range orjson can write back


class DuplicateKey(ValueError):
    """An attribute list names one key twice: a dict would keep only one of the values."""

    def __init__(self, keys: Iterable[Any]) -> None:
        self.keys = [str(k) for k, n in Counter(keys).items() if n > 1]
        super().__init__(", ".join(map(repr, self.keys)))

    @classmethod
    def of_items(cls, items: list[Any]) -> DuplicateKey:
        """The error for a JSON attribute list ``[{key, value}]``."""
        return cls(kv.get("key") for kv in items if type(kv) is dict)


def int_value(x: Any) -> Any:
    """An OTLP intValue (a string in proto3 JSON, a number from some exporters) as an int."""
    if type(x) is str:
        try:
            n = int(x)
        except ValueError:
            return x
        return n if INT_MIN <= n <= INT_MAX else x
    if type(x) is float and x.is_integer():
        return int(x)
    return x


def _double_value(x: Any) -> Any:
    """An OTLP doubleValue; "NaN" and "Infinity" stay text so the JSON keeps them."""
    if type(x) is str:
        try:
            f = float(x)
        except ValueError:
            return x
        return f if math.isfinite(f) else x
    return x


def _bool_value(x: Any) -> Any:
    return x if type(x) is bool else str(x).lower() == "true"


def _array_value(x: Any) -> list[Any]:
    items = x.get("values") if type(x) is dict else x
    return [any_value(e) for e in items] if type(items) is list else []


def _kvlist_value(x: Any) -> dict[str, Any]:
    items = x.get("values") if type(x) is dict else x
    return attributes(items) if type(items) is list else {}


def _same(x: Any) -> Any:
    return x


_DECODERS: Final = {
    "stringValue": _same,
    "intValue": int_value,
    "doubleValue": _double_value,
    "boolValue": _bool_value,
    "arrayValue": _array_value,
    "kvlistValue": _kvlist_value,
    "bytesValue": _same,  # base64 text, kept as it is
}
_DECODERS.update({k.replace("Value", "_value"): f for k, f in list(_DECODERS.items())})


def any_value(value: Any) -> Any:
    """Decode an OTLP AnyValue into a plain JSON value; plain values pass through."""
    if type(value) is not dict:
        return value
    for tag, x in value.items():
        decode = _DECODERS.get(tag)
        if decode is not None:
            return decode(x)
    return value or None  # not an AnyValue: keep a non-empty object as it is


def attributes(items: Any) -> dict[str, Any]:
    """Decode an OTLP attribute list ``[{key, value: AnyValue}]`` into a dict.

    Raises:
        DuplicateKey: a key appears twice in the list.
    """
    if not items:
        return {}
    out: dict[str, Any] = {}
    try:
        for kv in items:
            v = kv["value"]
            s = v.get("stringValue")
            out[kv["key"]] = s if s is not None else any_value(v)
    except (KeyError, TypeError, AttributeError):
        return _attributes_lenient(items)
    if len(out) != len(items):
        raise DuplicateKey.of_items(items)
    return out


def span_attributes(items: Any) -> tuple[dict[str, Any], list[str] | None]:
    """Like :func:`attributes`, but intValues stay as read, and their keys are listed.

    Token counts are the usual intValues and go into text columns as they are; only the ones
    left for the ``attributes`` JSON are turned into numbers (with :func:`int_value`).
    """
    attrs: dict[str, Any] = {}
    ints = None
    if items:
        try:
            for kv in items:
                v = kv["value"]
                x = v.get("stringValue")
                if x is None:
                    x = v.get("intValue")
                    if x is None:
                        x = any_value(v)
                    elif ints is None:
                        ints = [kv["key"]]
                    else:
                        ints.append(kv["key"])
                attrs[kv["key"]] = x
        except (KeyError, TypeError, AttributeError):
            return _attributes_lenient(items), None
        if len(attrs) != len(items):
            raise DuplicateKey.of_items(items)
    return attrs, ints


def _attributes_lenient(items: Any) -> dict[str, Any]:
    """Slow path for attribute lists that are not well formed; keeps what it cannot read."""
    if type(items) is dict:  # some exporters write a plain map
        return {str(k): any_value(v) for k, v in items.items()}
    if type(items) is not list:
        return {"_attributes": items}
    out: dict[str, Any] = {}
    malformed = []
    for kv in items:
        if type(kv) is dict and type(kv.get("key")) is str:
            out[kv["key"]] = any_value(kv.get("value"))
        else:
            malformed.append(kv)
    if len(out) + len(malformed) != len(items):
        raise DuplicateKey.of_items(items)
    if malformed:
        out["_malformed_attributes"] = malformed
    return out


def dumps(v: Any) -> str:
    """``v`` as JSON text; values orjson cannot write become their text."""
    try:  # the usual case, text keys alone: written the same with or without the option
        return orjson.dumps(v).decode()
    except TypeError:
        pass
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def text(v: Any) -> str | None:
    """A value as canonical text: strings as-is, numbers as their text, structures as JSON."""
    t = type(v)
    if t is str or v is None:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return repr(v)
    return dumps(v)
