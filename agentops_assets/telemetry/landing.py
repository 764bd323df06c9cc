"""The landing folder: which files are there, and their bytes (decompressed).

The landing is a local folder (the default, ``$AGENTOPS_HOME/landing``) or a prefix on object
storage (``AGENTOPS_LANDING_URI=s3://bucket/prefix``, also ``gs://``, ``az://``). On object
storage, objects are listed and read through pyarrow's filesystems (which take the endpoint and
credentials from the usual ``AWS_*``... variables); a file's ``name`` is then its URI. Hidden
names, bounded decompression and the exactly-once stamps (name, size, mtime) are the same on
both; links and special files exist only on disk.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Final, Literal
from urllib.parse import urlparse

import pyarrow.fs as pafs

from agentops_assets.storage.config import delta_storage_options, is_local
from memory.redaction import redact_text

SourceFormat = Literal["jsonl", "otlp_json", "otlp_protobuf"]
_SUFFIXES: Final[dict[str, SourceFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "otlp_json",
    ".pb": "otlp_protobuf",  # one serialized ExportTraceServiceRequest, as .pb or .otlp.pb
}
BINARY_FORMATS: Final[frozenset[SourceFormat]] = frozenset({"otlp_protobuf"})
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True)
class LandingFile:
    """A file in the landing folder, as found on disk, or an object under the landing prefix."""

    # The file's path, or the object's URI (``s3://bucket/key``) on object storage.
    path: Path | str
    # Path relative to the landing folder, with forward slashes; a byte of the name that is not
    # UTF-8 is written \xNN, the same way on every run, so tables can hold the name. On object
    # storage, the object's URI.
    name: str
    size: int
    mtime_ns: int
    source_format: SourceFormat
    compressed: bool
    problem: str | None = None  # symlink_refused, not_a_regular_file: known before any read
    root: Path | None = None  # the landing folder; the file is opened by walking down from it

    @property
    def modified_at(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC)

    @property
    def is_object(self) -> bool:
        """Whether the file is an object on object storage (read through pyarrow.fs)."""
        return isinstance(self.path, str)


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


def discover(landing: Path | str) -> list[LandingFile]:
    """Every landing file the platform can read, or must refuse, sorted by name.

    ``landing`` is a local folder, or an object-store URI whose objects are listed recursively
    (see :func:`discover_objects`).

    Hidden files and folders (a leading dot) are skipped: producers write there first and
    rename into place, so a half-written file is never picked up. Links are never followed: a
    linked folder is not entered, and a link or special file (FIFO, socket, device) with a
    landing file's name is listed with its ``problem``, to be recorded and never read.
    """
    if isinstance(landing, str) and not is_local(landing):
        return discover_objects(landing)
    landing = Path(landing.removeprefix("file://") if isinstance(landing, str) else landing)
    if not landing.is_dir():
        return []
    found = []
    for parts, entry in _entries(landing, ()):
        kind = landing_format(Path(entry.name))
        if kind is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed since the folder was listed
            continue
        problem = None
        if stat.S_ISLNK(info.st_mode):
            problem = "symlink_refused"
        elif not stat.S_ISREG(info.st_mode):
            problem = "not_a_regular_file"
        # Names are stored (tables, statistics, metadata): a secret in one is redacted here, so
        # every table and the "already ingested?" check see the same name.
        name = redact_text(os.fsencode("/".join(parts)).decode("utf-8", errors="backslashreplace"))
        path = Path(entry.path)
        found.append(
            LandingFile(path, name, info.st_size, info.st_mtime_ns, *kind, problem, landing)
        )
    return sorted(found, key=lambda f: f.name)


def discover_objects(uri: str) -> list[LandingFile]:
    """Every landing object under the prefix ``uri`` (listed recursively), sorted by name.

    Names with a hidden component (a key segment starting with a dot) are skipped, as hidden
    files and folders are on disk. Size and modification time come from the listing; an object
    replaced in place under the same key shows a new size or time, so it is a new file.
    """
    filesystem, base = _filesystem(uri)
    base = base.rstrip("/")
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    scheme = urlparse(uri).scheme
    found = []
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(base) + 1 :] if info.path.startswith(base + "/") else info.path
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        kind = landing_format(Path(info.base_name))
        if kind is None or info.mtime_ns is None:
            continue
        address = f"{scheme}://{info.path}"
        found.append(
            LandingFile(address, redact_text(address), info.size or 0, info.mtime_ns, *kind)
        )
    return sorted(found, key=lambda f: f.name)


@lru_cache(maxsize=16)
def _store(scheme: str, bucket: str, settings: tuple[tuple[str, str], ...]) -> pafs.FileSystem:
    """The filesystem of one bucket, made once per process and settings (making one may cost
    a request); pyarrow reads the settings (endpoint, credentials) from the environment."""
    del settings  # part of the cache key only: new settings make a new filesystem
    return pafs.FileSystem.from_uri(f"{scheme}://{bucket}")[0]


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri``, and the path of ``uri`` in it (``bucket/key``)."""
    parsed = urlparse(uri)
    path = f"{parsed.netloc}{parsed.path}".rstrip("/")
    settings = tuple(sorted(delta_storage_options(uri).items()))
    return _store(parsed.scheme, parsed.netloc, settings), path


def write_object(uri: str, data: bytes) -> None:
    """Store ``data`` as the object ``uri``; it appears whole once this returns, or not at all.

    An S3 PUT (or the completion of a multipart upload) is atomic: readers never see part of
    the object, so no temporary name is needed.

    Raises:
        OSError: the store refused the write or could not be reached.
    """
    filesystem, path = _filesystem(uri)
    # compression=None: the bytes are stored as given (pyarrow would gzip a ``.gz`` name again).
    with filesystem.open_output_stream(path, compression=None) as out:
        out.write(data)


def _entries(folder: Path, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], os.DirEntry]]:
    """Entries under ``folder`` that are not folders, without entering linked folders."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(Path(entry.path), (*parts, entry.name))
        else:
            yield (*parts, entry.name), entry


class RefusedFile(Exception):
    """A landing entry that is not read: a link, or not a regular file."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


_OPEN_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO put in place since discovery must not wait for a writer.
_OPEN_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_landing(file: LandingFile) -> BinaryIO:
    """Open a landing file to read, following no link on the way down from the landing folder.

    The open itself checks what it opened, so a file swapped for a link or a FIFO after
    discovery is refused too.

    Raises:
        RefusedFile: the file, or a folder on its path, is a link, or it is not a regular file.
    """
    if file.problem:
        raise RefusedFile(file.problem)
    if isinstance(file.path, str):
        filesystem, path = _filesystem(file.path)
        return filesystem.open_input_file(path)  # type: ignore[return-value]  (file-like)
    root = file.root or file.path.parent
    parts = file.path.relative_to(root).parts
    folder = os.open(root, _OPEN_DIR)  # the landing folder itself may be a link: configuration
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _OPEN_DIR | os.O_NOFOLLOW, dir_fd=folder)
            except NotADirectoryError:
                if stat.S_ISLNK(os.stat(part, dir_fd=folder, follow_symlinks=False).st_mode):
                    raise RefusedFile("symlink_refused") from None
                raise
            os.close(folder)
            folder = inner
        try:
            fd = os.open(parts[-1], _OPEN_FILE, dir_fd=folder)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RefusedFile("symlink_refused") from None
            raise
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RefusedFile("not_a_regular_file")
    return os.fdopen(fd, "rb")


def file_digest(file: LandingFile) -> str:
    """SHA-256 of a landing file's stored bytes, read in chunks; of no bytes if refused."""
    try:
        with open_landing(file) as stream:
            if file.is_object:
                digest = hashlib.sha256()
                while block := stream.read(_BLOCK):
                    digest.update(block)
                return digest.hexdigest()
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except RefusedFile:
        return hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class FileContent:
    """A landing file's decompressed bytes, the hash of its stored bytes, and what went wrong."""

    content_hash: str  # sha256 of the file as stored (compressed or not)
    data: bytes  # the decompressed bytes; only the first ones when they were not all kept
    # truncated_file, invalid_gzip, binary_file, decompressed_too_large (data is its start);
    # symlink_refused, not_a_regular_file (not read)
    problem: str | None = None
    size: int = 0  # decompressed bytes read, all of them unless the limit stopped the read


_BLOCK: Final = 4 << 20  # stored bytes read at a time
_PIECE: Final = 4 << 20  # decompressed bytes made at a time: all a gzip bomb gets at once
_HEAD: Final = 65_536  # decompressed bytes kept when the rest is not: the binary test, raw text
_NO_BYTES_HASH: Final = hashlib.sha256(b"").hexdigest()
# Problems that leave nothing to parse: the file is one quarantine row.
WHOLE_FILE_PROBLEMS: Final = frozenset(
    {
        "binary_file",
        "invalid_gzip",
        "decompressed_too_large",
        "symlink_refused",
        "not_a_regular_file",
    }
)


def read_content(file: LandingFile, *, limit: int, keep: bool = True) -> FileContent:
    """Read a landing file whole; a gzip stream cut short yields what could be read.

    Args:
        file: The landing file.
        limit: Most decompressed bytes read; past it the read stops, and the content is only
            its first bytes with problem ``decompressed_too_large``.
        keep: Keep the bytes; without it only the first ones are kept (to measure a file).
    """
    binary = file.source_format in BINARY_FORMATS
    try:
        with open_landing(file) as stream:
            return _read(stream, file.compressed, limit=limit, keep=keep, binary=binary)
    except RefusedFile as refused:
        return FileContent(_NO_BYTES_HASH, b"", refused.problem)


@contextmanager
def content_in_chunks(
    file: LandingFile, *, limit: int, chunk_bytes: int
) -> Iterator[tuple[FileContent, Iterator[tuple[bytes, bool]]]]:
    """A landing file measured first (hash, size, problem), then its bytes in line-aligned chunks.

    Both passes read one open file, so they see the same bytes. Chunks end after a newline
    (the last one ends where the file does) and hold about ``chunk_bytes``; a line longer than
    that is one chunk. Each comes with whether it is the last. A file with a problem in
    ``WHOLE_FILE_PROBLEMS`` yields no chunk.
    """
    try:
        stream = open_landing(file)
    except RefusedFile as refused:
        yield FileContent(_NO_BYTES_HASH, b"", refused.problem), iter(())
        return
    with stream:
        measured = _read(stream, file.compressed, limit=limit, keep=False)
        if measured.problem in WHOLE_FILE_PROBLEMS:
            yield measured, iter(())
            return
        stream.seek(0)
        yield measured, _line_chunks(_Decoded(stream, compressed=file.compressed), chunk_bytes)


def _read(
    stream: BinaryIO, compressed: bool, *, limit: int, keep: bool, binary: bool = False
) -> FileContent:
    """Read a whole stream; ``binary``: the format is binary, so NUL bytes are no problem."""
    stored_size = _stored_size(stream)
    whole = keep and stored_size <= limit
    if whole and not compressed:
        data = stream.read()  # the common case: one read, no copies
        if len(data) <= limit and not data.startswith(_GZIP_MAGIC):
            problem = "binary_file" if not binary and _is_binary(data) else None
            return FileContent(hashlib.sha256(data).hexdigest(), data, problem, len(data))
        stream.seek(0)
    if whole:  # read and inflated in one go, as fast as a plain gunzip; the limit still holds
        decoded = _Decoded(stream, compressed=compressed, block=stored_size + 1, piece=limit + 1)
    else:
        decoded = _Decoded(stream, compressed=compressed)
    parts: list[bytes] = []
    head = b""
    for piece in decoded:
        if len(head) < _HEAD:
            head += piece[: _HEAD - len(head)]
        if decoded.size > limit:
            return FileContent(decoded.finish(), head, "decompressed_too_large", decoded.size)
        if keep:
            parts.append(piece)
    problem = decoded.problem
    if problem is None and not binary and _is_binary(head):
        problem = "binary_file"
    data = b"".join(parts) if keep else head
    return FileContent(decoded.finish(), data, problem, decoded.size)


def _stored_size(stream: BinaryIO) -> int:
    """Bytes of an open landing file as stored: a local file's, or an object's."""
    size = getattr(stream, "size", None)
    if callable(size):  # pyarrow's input file of an object
        return size()
    return os.fstat(stream.fileno()).st_size


class _Decoded:
    """The decompressed bytes of an open landing file, a bounded piece at a time.

    The stored bytes are hashed as they are read. ``problem`` (truncated_file, invalid_gzip)
    is known once the pieces run out.
    """

    def __init__(
        self, stream: BinaryIO, *, compressed: bool, block: int = _BLOCK, piece: int = _PIECE
    ) -> None:
        self.stream = stream
        self.compressed = compressed
        self.block, self.piece = block, piece
        self.digest = hashlib.sha256()
        self.problem: str | None = None
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        blocks = self._blocks()
        first = next(blocks, b"")
        stored = itertools.chain([first], blocks)
        gzip = self.compressed or first.startswith(_GZIP_MAGIC)
        for piece in self._gunzip(stored) if gzip else stored:
            self.size += len(piece)
            yield piece

    def finish(self) -> str:
        """The stored bytes' hash, after reading what is left of them."""
        for _ in self._blocks():
            pass
        return self.digest.hexdigest()

    def _blocks(self) -> Iterator[bytes]:
        while block := self.stream.read(self.block):
            self.digest.update(block)
            yield block

    def _gunzip(self, stored: Iterator[bytes]) -> Iterator[bytes]:
        """Concatenated gzip members, inflated at most ``self.piece`` bytes at a time."""
        member = zlib.decompressobj(wbits=31)
        started = exhausted = False  # started: the member has had input
        data = b""
        while True:
            if not data and not exhausted:
                data = next(stored, b"")
                exhausted = not data
            if exhausted and not started:
                return
            started = True
            try:
                out = member.decompress(data, self.piece)
            except zlib.error:
                self.problem = "truncated_file" if self.size else "invalid_gzip"
                return
            if out:
                yield out
            if member.eof:  # the next member, if any bytes are left
                data, member, started = member.unused_data, zlib.decompressobj(wbits=31), False
            else:
                data = member.unconsumed_tail
                if exhausted and not data and not out:  # the input ends inside a member
                    self.problem = "truncated_file"
                    return


def _line_chunks(pieces: Iterator[bytes], chunk_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """(chunk, last) pairs; there is always a last chunk, empty when nothing is left for it."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk_bytes:
            cut = buffer.rfind(b"\n", 0, chunk_bytes) + 1 or buffer.find(b"\n", chunk_bytes) + 1
            if not cut:
                break  # a line longer than a chunk: wait for its end
            yield bytes(buffer[:cut]), False
            del buffer[:cut]
    yield bytes(buffer), True


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
