"""The telemetry lakehouse as a plain library (no Dagster): readers, validation, ingestion.

The Dagster layer in ``agentops_assets.defs.telemetry`` and the CLI both call these.
"""

from agentops_assets.telemetry.ingest import FileResult, IngestReport, ingest_landing
from agentops_assets.telemetry.jsonl import read_jsonl
from agentops_assets.telemetry.otlp import read_otlp
from agentops_assets.telemetry.parsed import ParsedRecords, Reject
from agentops_assets.telemetry.redact import redact_frame, redact_text
from agentops_assets.telemetry.validate import Validated, validate

__all__ = [
    "FileResult",
    "IngestReport",
    "ParsedRecords",
    "Reject",
    "Validated",
    "ingest_landing",
    "read_jsonl",
    "read_otlp",
    "redact_frame",
    "redact_text",
    "validate",
]
