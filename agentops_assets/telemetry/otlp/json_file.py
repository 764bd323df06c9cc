"""Reading an OTLP/JSON trace file: one request, a JSON array of them, or one per line."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Final

import orjson

from agentops_assets.telemetry.otlp.json_document import items, read_request, resource_spans
from agentops_assets.telemetry.otlp.rows import Rows, whole_file, without_gc
from agentops_assets.telemetry.otlp.values import dumps
from agentops_assets.telemetry.parsed import ParsedRecords

_BOM: Final = b"\xef\xbb\xbf"
_WHITESPACE: Final = frozenset(b" \t\r\n")


def read_otlp(data: bytes, *, source_file: str = "", inherit: bool = True) -> ParsedRecords:
    """Read one OTLP JSON trace file into text records for validation.

    Args:
        data: The whole file, already decompressed.
        source_file: Name of the landing file. Accepted so every format reader has the same
            signature; quarantine rows get the name from the caller.
        inherit: Fill a span's missing agent identity and session from its nearest ancestor
            span in the same file (OpenTelemetry GenAI names the agent only on ``invoke_agent``).

    Returns:
        ParsedRecords: ``records`` in ``schema.RAW_SCHEMA`` (``_index`` is the span's 0-based
        position in file order), ``rejects`` for spans or file parts that cannot be records,
        ``raw(index)`` giving back the JSON text of any record, and ``records_read``.

    Raises:
        TypeError: if ``data`` is not bytes. Bad content never raises; it becomes a reject.

    Example:
        >>> parsed = read_otlp(Path("traces.json").read_bytes(), source_file="traces.json")
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"read_otlp expects the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    return without_gc(lambda: _read(data, inherit=inherit))


class _JsonRows(Rows):
    """Rows plus where each chunk of indices comes from in the file, for the raw lookup."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.chunk_firsts: list[int] = []
        # ("doc", position in a top-level array or None), ("line", (n, start, end)) for a line
        # of a newline-delimited file, or ("text", raw).
        self.chunk_refs: list[tuple[str, Any]] = []

    def bad_line(self, n: int, reason: str, detail: str, line: bytes) -> None:
        raw = line.decode("utf-8", "replace")
        self.chunk_firsts.append(self.index)
        self.chunk_refs.append(("text", raw))
        self.reject(reason, f"line {n + 1}: {detail}", raw, as_text=True)

    def request(self, req: Any, ref: tuple[str, Any]) -> None:
        """Read one ExportTraceServiceRequest; each span or unreadable part takes one index."""
        self.chunk_firsts.append(self.index)
        self.chunk_refs.append(ref)
        where = f"line {ref[1][0] + 1}: " if ref[0] == "line" else ""
        if type(req) is not dict:
            self.reject("not_an_object", f"{where}expected an ExportTraceServiceRequest", req)
        elif resource_spans(req) is None:
            self.reject("missing_field", f"{where}object has no resourceSpans", req)
        else:
            read_request(self, req, where)

    def finish(self, *, inherit: bool) -> ParsedRecords:
        if self.requests == 0:  # nothing in the file looks like OTLP: one reject for the file
            why = f" ({self.rejects[0].detail})" if self.rejects else ""
            detail = f"no ExportTraceServiceRequest with resourceSpans in the file{why}"
            return whole_file(self.body, "no_resource_spans", detail)
        return self.result(
            _RawLookup(self.body, self.chunk_firsts, self.chunk_refs), inherit=inherit
        )


class _RawLookup:
    """``raw(index)``: the JSON text of record ``index``, read again from the file on demand."""

    def __init__(self, body: bytes, firsts: list[int], refs: list[tuple[str, Any]]) -> None:
        self.body, self.firsts, self.refs = body, firsts, refs
        self.doc: Any = None
        self.cached: tuple[int, list[Any]] | None = None

    def __call__(self, index: int) -> str:
        chunk = bisect_right(self.firsts, index) - 1
        if chunk < 0:
            return ""
        kind, ref = self.refs[chunk]
        offset = index - self.firsts[chunk]
        if kind == "text":
            return ref if offset == 0 else ""
        if self.cached is None or self.cached[0] != chunk:
            self.cached = (chunk, self._items(kind, ref))
        items = self.cached[1]
        return dumps(items[offset]) if offset < len(items) else ""

    def _items(self, kind: str, ref: Any) -> list[Any]:
        if kind == "line":
            _, start, end = ref
            req = orjson.loads(self.body[start:end])
        else:
            if self.doc is None:
                self.doc = orjson.loads(self.body.removeprefix(_BOM))
            req = self.doc if ref is None else self.doc[ref]
        if resource_spans(req) is None:
            return [req]
        return items(req)


def _not_json(body: bytes, error: orjson.JSONDecodeError, what: str) -> tuple[str, str]:
    """Reason and detail for bytes that do not parse, with a hint for common mix-ups."""
    if body[:2] == b"\x1f\x8b":
        return "invalid_json", f"{what} is gzip data; decompress it before reading"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        hint = "binary data? OTLP protobuf files are read when named .pb"
        return "invalid_utf8", f"{what} is not UTF-8 text ({e.reason} at byte {e.start}; {hint})"
    return "invalid_json", f"{what} is not JSON: {error}"


def _read(data: bytes, *, inherit: bool) -> ParsedRecords:
    first, last = _content_bounds(data)
    if first == last:  # empty, or only whitespace: no spans, nothing to reject
        return _JsonRows(data).result(lambda index: "", inherit=inherit)
    newline = data.find(b"\n", first, last)
    if newline != -1 and _is_object(memoryview(data)[first:newline]):
        return _read_lines(data, first, last, inherit=inherit)
    try:
        doc = orjson.loads(memoryview(data)[first:last])
    except orjson.JSONDecodeError as error:
        return whole_file(data, *_not_json(data[first:last], error, "file"))
    rows = _JsonRows(data)
    if type(doc) is dict:
        if resource_spans(doc) is None:
            keys = ", ".join(map(str, list(doc)[:8])) or "none"
            detail = f"the JSON object has no resourceSpans (top-level keys: {keys})"
            return whole_file(data, "no_resource_spans", detail)
        rows.request(doc, ("doc", None))
    elif type(doc) is list:
        for position, req in enumerate(doc):
            rows.request(req, ("doc", position))
    else:
        kind = type(doc).__name__
        return whole_file(data, "not_an_object", f"file holds a JSON {kind}, not OTLP traces")
    del doc
    return rows.finish(inherit=inherit)


def _content_bounds(data: bytes) -> tuple[int, int]:
    """Offsets of the first and past the last non-whitespace byte, after a UTF-8 BOM."""
    first = 3 if data.startswith(_BOM) else 0
    last = len(data)
    while last > first and data[last - 1] in _WHITESPACE:
        last -= 1
    while first < last and data[first] in _WHITESPACE:
        first += 1
    return first, last


def _is_object(line: memoryview) -> bool:
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return False


def _read_lines(data: bytes, first: int, last: int, *, inherit: bool) -> ParsedRecords:
    """Newline-delimited requests, as the collector file exporter writes them."""
    rows = _JsonRows(data)
    view = memoryview(data)
    n = data.count(b"\n", 0, first)
    start = first
    while start < last:
        newline = data.find(b"\n", start, last)
        end = last if newline == -1 else newline
        if end > start and data[end - 1] == 0x0D:  # CRLF line ends
            end -= 1
        if end > start:
            try:
                req = orjson.loads(view[start:end])
            except orjson.JSONDecodeError as error:
                line = data[start:end]
                if line.strip():
                    rows.bad_line(n, *_not_json(line, error, "line"), line)
            else:
                rows.request(req, ("line", (n, start, end)))
                req = None  # free this request's tree before the next is parsed
        if newline == -1:
            break
        start = newline + 1
        n += 1
    return rows.finish(inherit=inherit)
