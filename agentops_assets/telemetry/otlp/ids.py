"""Trace and span ids: hex or base64 text normalised to lowercase hex."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

_B64_LENGTHS: Final = {16: (24, 22), 8: (12, 11)}  # padded, unpadded
_URLSAFE: Final = str.maketrans("-_", "+/")
_ZERO: Final = {16: bytes(16), 8: bytes(8)}


def hex_id(x: Any, size: int) -> str | None:
    """Normalise a trace (16-byte) or span (8-byte) id to lowercase hex.

    Accepts hex in any case, standard or URL-safe base64 with or without padding, and a
    64-bit hex trace id (left-padded with zeros, as the OpenTelemetry Zipkin mapping does).
    Returns None if malformed, and "" for the all-zero id, which OpenTelemetry treats as none.
    """
    if type(x) is not str:
        return None
    n = len(x)
    try:
        if n == 2 * size:
            b = bytes.fromhex(x)
        elif size == 16 and n == 16:
            b = bytes(8) + bytes.fromhex(x)
        elif n in _B64_LENGTHS[size]:
            b = base64.b64decode(x.translate(_URLSAFE) + "=" * (-n % 4), validate=True)
        else:
            return None
    except (ValueError, binascii.Error):
        return None
    if len(b) != size:  # fromhex skips whitespace
        return None
    if b == _ZERO[size]:
        return ""
    return x if n == 2 * size and x.islower() else b.hex()  # x.islower(): hex, lowercase


def span_ids(trace_id: Any, span_id: Any, parent: Any) -> tuple[str, str] | tuple[str, str, str]:
    """``(event_id, trace_id, parent_id)`` in hex, or ``(reason, detail)`` for bad ids.

    A span without a parent has parent_id "".
    """
    if not trace_id or not span_id:
        missing = "traceId" if not trace_id else "spanId"
        return "missing_field", f"span has no {missing}"
    event_id = hex_id(span_id, 8)
    if not event_id:
        return "invalid_id", f"spanId {span_id!r} is not a non-zero 8-byte hex or base64 id"
    trace = hex_id(trace_id, 16)
    if not trace:
        return "invalid_id", f"traceId {trace_id!r} is not a non-zero 16-byte hex or base64 id"
    parent_id = hex_id(parent, 8) if parent else ""
    if parent_id is None:
        return "invalid_id", f"parentSpanId {parent!r} is not an 8-byte hex or base64 id"
    return event_id, trace, parent_id
