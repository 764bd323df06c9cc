"""Replacing a small file so that readers see the old content or the new, never a part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` with ``data`` durably: a temporary file in the same folder (a dot name
    nothing lists) is written and fsynced, renamed over ``path``, and the folder fsynced so
    the rename itself survives a power cut.

    Args:
        path: The file to replace (created with its folder when missing).
        data: The whole new content.
        private: Mode 0600 for the file and 0700 for a folder created here (secrets' hashes).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600: a file others read gets the usual mode.
        os.fchmod(handle, 0o600 if private else 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
