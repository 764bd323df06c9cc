"""The landing folder: which files are there, and their bytes (decompressed)."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

SourceFormat = Literal["jsonl", "otlp_json"]
_SUFFIXES: Final[dict[str, SourceFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "otlp_json",
}
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True)
class LandingFile:
    """A file in the landing folder, as found on disk."""

    path: Path
    name: str  # path relative to the landing folder, with forward slashes
    size: int
    mtime_ns: int
    source_format: SourceFormat
    compressed: bool

    @property
    def modified_at(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC)


def landing_format(path: Path) -> tuple[SourceFormat, bool] | None:
    """The format of a landing file from its name, and whether it is gzip-compressed."""
    suffixes = path.name.lower().split(".")[1:]
    compressed = bool(suffixes) and suffixes[-1] == "gz"
    if compressed:
        suffixes = suffixes[:-1]
    if not suffixes:
        return None
    fmt = _SUFFIXES.get(f".{suffixes[-1]}")
    return (fmt, compressed) if fmt else None


def discover(landing: Path) -> list[LandingFile]:
    """Every landing file the platform can read, sorted by name.

    Hidden files and folders (a leading dot) are skipped: producers write there first and
    rename into place, so a half-written file is never picked up.
    """
    if not landing.is_dir():
        return []
    found = []
    for path in landing.rglob("*"):
        relative = path.relative_to(landing)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        kind = landing_format(path)
        if kind is None:
            continue
        stat = path.stat()
        found.append(LandingFile(path, relative.as_posix(), stat.st_size, stat.st_mtime_ns, *kind))
    return sorted(found, key=lambda f: f.name)


@dataclass(frozen=True)
class FileContent:
    """A landing file's bytes as stored, and decompressed; ``problem`` says what went wrong."""

    stored: bytes
    data: bytes
    problem: str | None = None  # truncated_file, invalid_gzip, binary_file


def read_content(file: LandingFile) -> FileContent:
    """Read a landing file whole; a gzip stream cut short yields what could be read."""
    stored = file.path.read_bytes()
    if not file.compressed and not stored.startswith(_GZIP_MAGIC):
        return FileContent(stored, stored, "binary_file" if _is_binary(stored) else None)
    data, problem = _gunzip(stored)
    if problem is None and _is_binary(data):
        problem = "binary_file"
    return FileContent(stored, data, problem)


def _gunzip(stored: bytes) -> tuple[bytes, str | None]:
    parts: list[bytes] = []
    rest = stored
    while rest:
        stream = zlib.decompressobj(wbits=31)
        try:
            parts.append(stream.decompress(rest))
        except zlib.error:
            return b"".join(parts), "invalid_gzip" if not parts else "truncated_file"
        if not stream.eof:
            parts.append(stream.flush())
            return b"".join(parts), "truncated_file"
        rest = stream.unused_data  # concatenated gzip members
    return b"".join(parts), None


def _is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def pending_files(
    found: list[LandingFile], ingested: set[tuple[str, int, datetime]]
) -> list[LandingFile]:
    """Landing files whose (name, size, mtime) is not recorded as ingested."""
    return [f for f in found if (f.name, f.size, f.modified_at) not in ingested]


def fingerprint(files: list[LandingFile]) -> str:
    """A short stable digest of a set of files as found (name, size, mtime)."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\0{f.size}\0{f.mtime_ns}\n".encode())
    return digest.hexdigest()[:20]
