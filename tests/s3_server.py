"""A local S3 server for the tests (moto's server mode on a free loopback port).

One server per test session; each test gets its own key prefix, so the lake and index of one
test are never seen by another. A test module uses the fixtures with::

    pytest_plugins = ("tests.s3_server",)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops_assets.storage.config import Paths
from agentops_assets.storage.local_s3 import LocalS3, start_local_s3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3]:
    """The session's S3 server, stopped after the last test."""
    with start_local_s3() as server:
        yield server


@pytest.fixture
def s3_env(s3_server: LocalS3) -> dict[str, str]:
    """Environment putting the lake and the index under a prefix of this test's own."""
    return s3_server.env(prefix=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def s3_paths(tmp_path: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A home on ``tmp_path`` (landing, locks, knowledge) with the lake and index on S3."""
    monkeypatch.setenv("AGENTOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGENTOPS_LANDING_URI", raising=False)  # landing: local unless a test says
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    paths = Paths.from_env()
    assert paths.lake_uri.startswith("s3://") and paths.index_uri.startswith("s3://")
    return paths
