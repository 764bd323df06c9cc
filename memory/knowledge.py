"""Knowledge documents -> chunks for retrieval (Markdown and plain text, no Dagster)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from memory.redaction import redact_text

SUFFIXES: Final = frozenset({".md", ".markdown", ".txt", ".rst"})
CHUNK_CHARS: Final = 800  # about 200 tokens: one idea per chunk, several per prompt
OVERLAP_CHARS: Final = 120
MAX_DOCUMENT_BYTES: Final = 8 << 20

CHUNK_SCHEMA: Final = pl.Schema(
    {
        "chunk_id": pl.String,  # <document>#<n>
        "document": pl.String,  # path relative to the knowledge folder
        "chunk_index": pl.Int32,
        "heading": pl.String,  # the nearest Markdown heading above the chunk
        "namespace": pl.String,  # the document's first folder, or "knowledge"
        "text": pl.String,
        "document_hash": pl.String,
    }
)

_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


@dataclass(frozen=True)
class Document:
    """A knowledge document as found on disk."""

    path: Path
    name: str  # relative to the knowledge folder, forward slashes
    text: str
    digest: str


def find_documents(folder: Path) -> list[Document]:
    """Readable text documents under ``folder`` (hidden files skipped), sorted by name."""
    if not folder.is_dir():
        return []
    documents = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in SUFFIXES or path.stat().st_size > MAX_DOCUMENT_BYTES:
            continue
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        documents.append(
            Document(path, relative.as_posix(), text, hashlib.sha256(data).hexdigest())
        )
    return documents


def folder_fingerprint(folder: Path) -> str:
    """A digest of the documents' names, sizes and mtimes: changes when any document does."""
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                stat = path.stat()
                digest.update(
                    f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
                )
    return digest.hexdigest()[:20]


def chunk_documents(documents: list[Document]) -> pl.DataFrame:
    """Split each document into overlapping chunks along paragraphs, keeping headings.

    Chunks are stored and indexed, so secrets in a document's text or name are redacted
    first, whole (a key cut at a chunk boundary would no longer be recognised).
    """
    rows = []
    for doc in documents:
        name = redact_text(doc.name)
        for index, (heading, text) in enumerate(_chunks(redact_text(doc.text))):
            rows.append(
                {
                    "chunk_id": f"{name}#{index}",
                    "document": name,
                    "chunk_index": index,
                    "heading": heading,
                    "namespace": name.split("/", 1)[0] if "/" in name else "knowledge",
                    "text": text,
                    "document_hash": doc.digest,
                }
            )
    return pl.DataFrame(rows, schema=CHUNK_SCHEMA)


def _chunks(text: str) -> Iterator[tuple[str, str]]:
    heading = ""
    buffer = ""
    has_body = False  # a run of headings alone is not worth a chunk; it joins the next one
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        match = _HEADING.match(paragraph.splitlines()[0])
        if match:
            if has_body:
                yield heading, buffer
                buffer, has_body = "", False
            heading = match.group(1).strip()
        for piece in _pieces(paragraph):
            if has_body and len(buffer) + len(piece) + 2 > CHUNK_CHARS:
                yield heading, buffer
                buffer = buffer[-OVERLAP_CHARS:].split(" ", 1)[-1] if OVERLAP_CHARS else ""
            buffer = f"{buffer}\n\n{piece}" if buffer else piece
            has_body = has_body or not match
    if has_body:
        yield heading, buffer


def _pieces(paragraph: str) -> Iterator[str]:
    """A paragraph longer than a chunk, cut at sentence ends."""
    while len(paragraph) > CHUNK_CHARS:
        cut = paragraph.rfind(". ", 0, CHUNK_CHARS)
        cut = cut + 1 if cut > CHUNK_CHARS // 2 else CHUNK_CHARS
        yield paragraph[:cut].strip()
        paragraph = paragraph[cut:].strip()
    if paragraph:
        yield paragraph
