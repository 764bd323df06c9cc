"""Landing files: per-day folders, rotation, gzip, and atomic publication by rename.

Every file is written under a dot-prefixed temporary name in its final folder and renamed
into place when complete, so a folder watcher never sees half a file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from .fleet import Agent
from .otlp import SCOPE, resource

ROTATE_AT: Final = 50_000  # records per file, checked at cycle boundaries
_CHUNK: Final = 4 << 20
EXPORT_BATCH: Final = 512  # spans per OTLP export request, as the SDK batch processor sends
_SCOPE: Final = orjson.dumps(SCOPE)


@dataclass
class FileRecord:
    """What one landing file holds, for the manifest."""

    path: Path
    format: str  # jsonl or otlp_json
    day: str
    events: int = 0
    bad_records: int = 0
    bad_by_kind: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    sha256: str = ""

    def to_json(self, landing: Path) -> dict[str, Any]:
        return {
            "path": self.path.relative_to(landing).as_posix(),
            "format": self.format,
            "day": self.day,
            "events": self.events,
            "bad_records": self.bad_records,
            "bad_by_kind": dict(sorted(self.bad_by_kind.items())),
            "records": self.events + self.bad_records,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


class _HashingFile:
    """A binary file that hashes and counts what is written to it (the stored bytes)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _AtomicFile:
    """A landing file being written under a temporary name, optionally gzip-compressed."""

    def __init__(self, path: Path, compress: bool) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self._raw = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()
        self._hashing = _HashingFile(self._raw)
        self._out: Any = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._hashing, compresslevel=6, mtime=0)
            if compress
            else self._hashing
        )

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def close(self) -> tuple[int, str]:
        if self._out is not self._hashing:
            self._out.close()
        self._raw.close()
        os.replace(self.tmp, self.path)
        return self._hashing.size, self._hashing.hash.hexdigest()


class LandingWriter:
    """Writes records for each day into rotating JSONL and OTLP JSON files."""

    def __init__(self, landing: Path, *, seed: int, compress: bool) -> None:
        self.landing = landing
        self.seed = seed
        self.compress = compress
        self.files: list[FileRecord] = []
        self._day = ""
        self._seq = {"jsonl": 0, "otlp": 0}
        self._jsonl: tuple[_AtomicFile, FileRecord] | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._otlp: FileRecord | None = None
        self._spans: dict[str, tuple[bytes, list[bytes]]] = {}

    def start_day(self, day: str) -> None:
        """Close the previous day's files and write the next ones under ``landing/<day>/``."""
        self.finish_day()
        self._day = day
        self._seq = {"jsonl": 0, "otlp": 0}
        (self.landing / day).mkdir(parents=True, exist_ok=True)

    def _path(self, fmt: str) -> Path:
        ext = ".jsonl" if fmt == "jsonl" else ".json"
        if self.compress:
            ext += ".gz"
        name = f"fleet-s{self.seed}-{fmt}-{self._seq[fmt]:03d}{ext}"
        self._seq[fmt] += 1
        return self.landing / self._day / name

    def jsonl(self, lines: list[bytes], events: int, bad_kinds: list[str]) -> None:
        """Append one cycle's lines (good and bad) to the day's current JSONL file."""
        if self._jsonl is None:
            path = self._path("jsonl")
            self._jsonl = (_AtomicFile(path, self.compress), FileRecord(path, "jsonl", self._day))
        out, rec = self._jsonl
        rec.events += events
        rec.bad_records += len(bad_kinds)
        rec.bad_by_kind.update(bad_kinds)
        self._buffer.extend(lines)
        self._buffered += sum(map(len, lines))
        if self._buffered >= _CHUNK:
            out.write(b"".join(self._buffer))
            self._buffer, self._buffered = [], 0
        if rec.events + rec.bad_records >= ROTATE_AT:
            self._close_jsonl()

    def _close_jsonl(self) -> None:
        if self._jsonl is None:
            return
        out, rec = self._jsonl
        out.write(b"".join(self._buffer))
        self._buffer, self._buffered = [], 0
        rec.bytes, rec.sha256 = out.close()
        self.files.append(rec)
        self._jsonl = None

    def otlp(self, agent: Agent, spans: list[bytes], events: int, bad_kinds: list[str]) -> None:
        """Append one cycle's encoded spans to the agent's resource in the current OTLP file."""
        if self._otlp is None:
            self._otlp = FileRecord(self._path("otlp"), "otlp_json", self._day)
            self._spans = {}
        rec = self._otlp
        rec.events += events
        rec.bad_records += len(bad_kinds)
        rec.bad_by_kind.update(bad_kinds)
        entry = self._spans.get(agent.id)
        if entry is None:
            entry = self._spans[agent.id] = (resource(agent), [])
        entry[1].extend(spans)
        if rec.events + rec.bad_records >= ROTATE_AT:
            self._close_otlp()

    def _close_otlp(self) -> None:
        rec = self._otlp
        if rec is None:
            return
        # As the collector's file exporter writes them: one export request per line, each a
        # batch of at most EXPORT_BATCH spans from one agent (the SDK's batch processor size).
        out = _AtomicFile(rec.path, self.compress)
        for res, spans in self._spans.values():
            for start in range(0, len(spans), EXPORT_BATCH):
                batch = b",".join(spans[start : start + EXPORT_BATCH])
                out.write(
                    b'{"resourceSpans":[{"resource":' + res + b',"scopeSpans":[{"scope":'
                    + _SCOPE + b',"spans":[' + batch + b"]}]}]}\n"
                )  # fmt: skip
        rec.bytes, rec.sha256 = out.close()
        self.files.append(rec)
        self._otlp, self._spans = None, {}

    def finish_day(self) -> None:
        """Publish the open files of the current day."""
        self._close_jsonl()
        self._close_otlp()


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
