"""AgentOps Grid: the Dagster code location and the telemetry lakehouse."""

import os

# Polars allocates through its own jemalloc, built to hand freed pages back to the kernel within
# a fraction of a second. Ingestion and the FinOps refreshes cycle through buffers of tens of
# megabytes, so the kernel then spends a quarter of the CPU faulting the same pages back in.
# Keeping freed pages for ten seconds (jemalloc's stock decay) removes most of that (measured:
# system CPU of a million-event ingest 2.5 s -> 1.3 s, peak memory +5-10 %). jemalloc reads this
# when polars loads, so it is set before any module here imports polars; a value already in the
# environment wins.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:10000,muzzy_decay_ms:10000"
)
