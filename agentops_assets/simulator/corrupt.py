"""Malformed records of many kinds, as broken producers write them, each counted by kind.

Bad records are extra records made from a copy of a good event, with their own ids (never one
of a good event), drawn from their own generator: the good events do not depend on
``bad_fraction``.
"""

from __future__ import annotations

import random
from typing import Any, Final

import orjson

from agentops_assets.telemetry.schema import REQUIRED_FIELDS

from .otlp import span, token_key
from .text import IdSource

JSONL_KINDS: Final = (
    "truncated_line",
    "invalid_json",
    "wrong_type",
    "missing_field",
    "negative_tokens",
    "confidence_out_of_range",
    "ts_far_future",
    "ts_before_2000",
    "invalid_utf8",
    "json_array",
)
OTLP_KINDS: Final = (
    "missing_span_id",
    "missing_trace_id",
    "bad_start_time",
    "negative_tokens",
    "confidence_out_of_range",
    "wrong_type",
)
_NL: Final = orjson.OPT_APPEND_NEWLINE


class Corruptor:
    """Decides how many bad records follow each good one and makes them."""

    def __init__(self, fraction: float, seed: int, ids: IdSource) -> None:
        self.r = random.Random(f"agentops-bad:{seed}")
        self.rate = fraction / (1.0 - fraction) if fraction else 0.0
        self.ids = ids

    def count(self) -> int:
        """How many bad records to write after the next good one (mean ``F / (1 - F)``)."""
        whole = int(self.rate)
        return whole + (1 if self.r.random() < self.rate - whole else 0)

    def _copy(self, e: dict[str, Any]) -> dict[str, Any]:
        bad = dict(e)
        bad["event_id"] = self.ids.bad_span()
        return bad

    def jsonl(self, e: dict[str, Any]) -> tuple[str, bytes]:
        """One malformed JSONL line (with its newline) made from event ``e``, and its kind."""
        r = self.r
        kind = r.choice(JSONL_KINDS)
        d = self._copy(e)
        if kind == "wrong_type":
            if "input_tokens" in d:
                d["input_tokens"] = "lots"
            elif "confidence" in d:
                d["confidence"] = "high"
            else:
                d["duration_ms"] = "fast"
        elif kind == "missing_field":
            del d[r.choice(REQUIRED_FIELDS)]
        elif kind == "negative_tokens":
            d["input_tokens"] = -r.randint(1, 5000)
        elif kind == "confidence_out_of_range":
            d["confidence"] = r.choice((1.5, -0.2, 7.0, 100.0))
        elif kind == "ts_far_future":
            d["ts"] = "2300" + d["ts"][4:]
        elif kind == "ts_before_2000":
            d["ts"] = r.choice(("1999" + d["ts"][4:], "1970-01-01T00:00:00.000000Z"))
        line = orjson.dumps(d)
        if kind == "truncated_line":
            line = line[: r.randint(12, max(13, len(line) - 2))]
        elif kind == "invalid_json":
            variant = r.randrange(3)
            if variant == 0:
                line = line.replace(b'":', b'"=', 1)
            elif variant == 1:
                line = line[:-1] + b",}"
            else:
                line = line.replace(b'"event_id"', b"'event_id'", 1)
        elif kind == "invalid_utf8":
            at = line.find(b'":"') + 3
            line = line[:at] + r.choice((b"\xff\xfe", b"\xc3\x28", b"\xe9t\xe9")) + line[at:]
        elif kind == "json_array":
            line = orjson.dumps(list(d.values()))
        return kind, line + b"\n"

    def otlp(self, e: dict[str, Any], t_us: int, dialect: str) -> tuple[str, dict[str, Any]]:
        """One malformed span made from event ``e``, and its kind."""
        r = self.r
        kind = r.choice(OTLP_KINDS)
        s = span(self._copy(e), t_us, dialect)
        attrs = s["attributes"]
        if kind == "missing_span_id":
            del s["spanId"]
        elif kind == "missing_trace_id":
            del s["traceId"]
        elif kind == "bad_start_time":
            s["startTimeUnixNano"] = r.choice(("yesterday", "-1", "", "99999999999999999999999"))
        elif kind in ("negative_tokens", "wrong_type"):
            key = token_key(dialect)
            value = str(-r.randint(1, 5000)) if kind == "negative_tokens" else "lots"
            s["attributes"] = [a for a in attrs if a["key"] != key]
            s["attributes"].append({"key": key, "value": {"intValue": value}})
        else:
            s["attributes"] = [a for a in attrs if a["key"] != "agentops.confidence"]
            value = r.choice((1.5, -0.2, 7.0))
            s["attributes"].append({"key": "agentops.confidence", "value": {"doubleValue": value}})
        return kind, s
