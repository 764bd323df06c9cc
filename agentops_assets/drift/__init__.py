"""Behaviour baselines, drift, anomalies and coordination findings: a plain library.

Everything here reads the FinOps ``reasoning_cycles`` and ``agent_events`` tables and returns
polars frames of the drift tables (:mod:`agentops_assets.drift.tables`); the Dagster assets in
``defs/drift/`` write them.
"""
