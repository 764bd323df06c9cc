"""The production profile (deploy/dagster.yaml) on the machine's real PostgreSQL server.

The instance it describes opens on a fresh database named only by ``DAGSTER_PG_URL``, and a
materialization of the ingestion assets is recorded there: runs, their events and the asset's
materialization survive in PostgreSQL, not in a local folder.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from agentops_assets.storage.config import Paths, environment
from tests.conftest import event, write_jsonl
from tests.test_definitions import _resources

PROFILE = Path(__file__).parent.parent / "deploy" / "dagster.yaml"
SERVER = "postgresql://postgres@127.0.0.1:5432"


def _admin(sql: str) -> None:
    connection = psycopg2.connect(f"{SERVER}/postgres")
    connection.autocommit = True
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the local server, dropped afterwards."""
    name = f"agentops_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_profile_keeps_runs_and_materializations_in_postgres(
    paths: Paths, database: str, tmp_path: Path
) -> None:
    from agentops_assets.defs.telemetry.assets import telemetry_ingestion

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(PROFILE, dagster_home / "dagster.yaml")
    write_jsonl(paths.landing / "a.jsonl", [event(n) for n in range(10)])
    url = database.replace("postgresql://", "postgresql+psycopg2://", 1)
    with (
        environment(DAGSTER_HOME=str(dagster_home), DAGSTER_PG_URL=url),
        dg.DagsterInstance.get() as instance,
    ):
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        result = dg.materialize(
            [telemetry_ingestion], resources=_resources(paths), instance=instance
        )
        assert result.success
    # Read back with a plain connection: the run and the materialization are in the database.
    connection = psycopg2.connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT run_id, status FROM runs")
        assert cursor.fetchall() == [(result.run_id, "SUCCESS")]
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (result.run_id, "ASSET_MATERIALIZATION"),
        )
        assert cursor.fetchone()[0] >= 1
    finally:
        connection.close()
    # The profile names no secret: the database comes from the environment alone.
    settings = yaml.safe_load(PROFILE.read_text())
    assert settings["storage"]["postgres"] == {"postgres_url": {"env": "DAGSTER_PG_URL"}}
    assert not list(dagster_home.glob("*.db")) and not (dagster_home / "storage").exists()


def test_the_celery_worker_config_takes_its_urls_from_the_environment() -> None:
    from dagster_celery.cli import get_validated_config

    config = PROFILE.parent / "celery.yaml"
    settings = yaml.safe_load(config.read_text())["execution"]["config"]
    assert settings["broker"] == {"env": "AGENTOPS_CELERY_BROKER"}
    assert settings["backend"] == {"env": "AGENTOPS_CELERY_BACKEND"}
    broker = "amqp://guest:guest@127.0.0.1:5672//"
    with environment(AGENTOPS_CELERY_BROKER=broker, AGENTOPS_CELERY_BACKEND="rpc://"):
        validated = get_validated_config(str(config))
    # dagster-celery's own schema accepts it, and the worker gets the URLs from the variables.
    assert validated["broker"] == broker and validated["backend"] == "rpc://"
    assert validated["config_source"]["worker_prefetch_multiplier"] == 1
