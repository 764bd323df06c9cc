"""Asset checks on the telemetry tables."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from agentops_assets.defs.resources import LakeResource
from agentops_assets.storage.sql import register_tables
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES, QUARANTINE

NO_TELEMETRY = "No telemetry yet: agent_events has no rows to check."


@dg.asset_check(asset=AGENT_EVENTS, blocking=True)
def event_ids_unique(lake: LakeResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """No event_id is stored twice in agent_events."""
    with duckdb.get_connection() as con:
        if AGENT_EVENTS not in register_tables(con, lake.paths):
            return dg.AssetCheckResult(
                passed=True,
                description=NO_TELEMETRY,
                metadata={"rows": 0, "duplicate_rows": 0, "examples": "none"},
            )
        rows, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM {AGENT_EVENTS}"
        ).fetchone()
        repeated = con.execute(
            f"SELECT event_id, count(*) AS n FROM {AGENT_EVENTS} "
            "GROUP BY 1 HAVING n > 1 ORDER BY n DESC LIMIT 5"
        ).fetchall()
    return dg.AssetCheckResult(
        passed=rows == distinct,
        metadata={
            "rows": rows,
            "duplicate_rows": rows - distinct,
            "examples": ", ".join(f"{event_id} x{n}" for event_id, n in repeated) or "none",
        },
    )


@dg.asset_check(asset=INGESTED_FILES)
def records_accounted_for(lake: LakeResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Every record read is stored, a duplicate, or quarantined, and the rows are there.

    Each file record adds up (records = new + duplicate + quarantined rows), and the rows the
    records promise are the rows stored: new rows per path against ``agent_events`` rows of
    that source file, quarantined rows per (path, content hash) against quarantine rows.
    """
    with duckdb.get_connection() as con:
        tables = register_tables(con, lake.paths)
        if INGESTED_FILES not in tables:
            return dg.AssetCheckResult(
                passed=True, description=NO_TELEMETRY, metadata={"files": 0, "records": 0}
            )
        events = _counts(tables, AGENT_EVENTS, "source_file")
        quarantine = _counts(tables, QUARANTINE, "source_file, file_hash")
        problems = con.execute(
            f"""
            SELECT path, 'records <> new + duplicate + quarantined rows' FROM {INGESTED_FILES}
            WHERE records <> new_rows + duplicate_rows + quarantined_rows
               OR good_rows <> new_rows + duplicate_rows
            UNION ALL
            SELECT coalesce(r.path, s.source_file),
                   format('{{}} new rows recorded, {{}} stored in {AGENT_EVENTS}',
                          coalesce(r.n, 0), coalesce(s.n, 0))
            FROM (SELECT path, sum(new_rows) AS n FROM {INGESTED_FILES} GROUP BY path) r
            FULL JOIN ({events}) s ON r.path = s.source_file
            WHERE coalesce(r.n, 0) <> coalesce(s.n, 0)
            UNION ALL
            SELECT coalesce(r.path, s.source_file),
                   format('{{}} quarantined rows recorded, {{}} stored in {QUARANTINE}',
                          coalesce(r.n, 0), coalesce(s.n, 0))
            FROM (
                SELECT path, content_hash, sum(quarantined_rows) AS n FROM {INGESTED_FILES}
                GROUP BY path, content_hash
            ) r
            FULL JOIN ({quarantine}) s
                ON r.path = s.source_file AND r.content_hash = s.file_hash
            WHERE coalesce(r.n, 0) <> coalesce(s.n, 0)
            ORDER BY 1, 2
            """
        ).fetchall()
        files, records = con.execute(
            f"SELECT count(*), coalesce(sum(records), 0) FROM {INGESTED_FILES}"
        ).fetchone()
    paths = sorted({path for path, _ in problems})
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "files": files,
            "records": int(records),
            "files_not_adding_up": ", ".join(paths[:10]) or "none",
            "problems": "\n".join(f"{path}: {what}" for path, what in problems[:10]) or "none",
        },
    )


def _counts(tables: list[str], name: str, keys: str) -> str:
    """Rows per ``keys`` of a table, as SQL; no rows when the table does not exist yet."""
    if name not in tables:
        columns = ", ".join(f"NULL::VARCHAR AS {key.strip()}" for key in keys.split(","))
        return f"SELECT {columns}, 0 AS n WHERE false"
    return f"SELECT {keys}, count(*) AS n FROM {name} GROUP BY {keys}"
