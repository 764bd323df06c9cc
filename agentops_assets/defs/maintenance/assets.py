"""The ``lake_maintenance`` asset: one materialization per maintenance pass, with its figures."""

import dagster as dg

from agentops_assets.defs.resources import LakeResource
from agentops_assets.defs.telemetry.assets import LAKE_WRITERS_POOL
from agentops_assets.storage.maintenance import MaintenanceReport, run_maintenance

_MB = 1024 * 1024


@dg.asset(
    group_name="maintenance",
    kinds={"delta", "lancedb"},
    pool=LAKE_WRITERS_POOL,
)
def lake_maintenance(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Compaction and vacuum of every Delta table, snapshot pruning and cleanup of the LanceDB
    index, within the retention of policies/maintenance.yaml."""
    report = run_maintenance(lake.paths, log=context.log.info)
    return dg.MaterializeResult(metadata=maintenance_metadata(report))


def maintenance_metadata(report: MaintenanceReport) -> dict[str, dg.MetadataValue]:
    """Totals, and one row per table, for the asset's materialization."""
    return {
        "tables": dg.MetadataValue.int(len(report.tables)),
        "files_compacted": dg.MetadataValue.int(report.files_compacted),
        "files_vacuumed": dg.MetadataValue.int(report.files_vacuumed),
        "mb_freed": dg.MetadataValue.float(round(report.bytes_freed / _MB, 3)),
        "bytes_freed": dg.MetadataValue.int(report.bytes_freed),
        "snapshots_pruned": dg.MetadataValue.int(report.snapshots_pruned),
        "per_table": dg.MetadataValue.md(_table_markdown(report)),
    }


def _table_markdown(report: MaintenanceReport) -> str:
    lines = [
        "| store | table | files compacted | files added | files vacuumed "
        "| versions removed | MB freed | snapshots pruned |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report.tables:
        lines.append(
            f"| {t.store} | {t.table} | {t.files_removed} | {t.files_added} "
            f"| {t.files_vacuumed} | {t.versions_removed} | {t.bytes_freed / _MB:.3f} "
            f"| {len(t.snapshots_pruned)} |"
        )
    lines.append(
        f"| **total** | | {report.files_compacted} | {sum(t.files_added for t in report.tables)} "
        f"| {report.files_vacuumed} | {sum(t.versions_removed for t in report.tables)} "
        f"| {report.bytes_freed / _MB:.3f} | {report.snapshots_pruned} |"
    )
    return "\n".join(lines)
