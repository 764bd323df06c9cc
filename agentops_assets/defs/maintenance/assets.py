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
        "files_added": dg.MetadataValue.int(sum(t.files_added for t in report.tables)),
        "files_vacuumed": dg.MetadataValue.int(report.files_vacuumed),
        "versions_removed": dg.MetadataValue.int(sum(t.versions_removed for t in report.tables)),
        "mb_freed": dg.MetadataValue.float(round(report.bytes_freed / _MB, 3)),
        "bytes_freed": dg.MetadataValue.int(report.bytes_freed),
        "snapshots_pruned": dg.MetadataValue.int(report.snapshots_pruned),
        "per_table": dg.MetadataValue.table(
            [
                dg.TableRecord(
                    {
                        "store": t.store,
                        "table": t.table,
                        "files_compacted": t.files_removed,
                        "files_added": t.files_added,
                        "files_vacuumed": t.files_vacuumed,
                        "versions_removed": t.versions_removed,
                        "mb_freed": round(t.bytes_freed / _MB, 3),
                        "snapshots_pruned": len(t.snapshots_pruned),
                    }
                )
                for t in report.tables
            ],
            _PER_TABLE,
        ),
    }


_PER_TABLE = dg.TableSchema(
    columns=[
        dg.TableColumn("store", description="delta or lance"),
        dg.TableColumn("table"),
        dg.TableColumn("files_compacted", "int", "small files compaction replaced"),
        dg.TableColumn("files_added", "int", "files compaction wrote"),
        dg.TableColumn("files_vacuumed", "int", "Delta files no retained version reads"),
        dg.TableColumn("versions_removed", "int", "LanceDB versions cleaned up"),
        dg.TableColumn("mb_freed", "float"),
        dg.TableColumn("snapshots_pruned", "int", "memory-v{N} tags removed"),
    ]
)
