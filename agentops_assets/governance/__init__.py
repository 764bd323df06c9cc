"""Governance: policies as code, the capability registry, and the tamper-evident audit ledger.

A plain library (no dagster import): the Dagster assets and the CLI call into it.
"""
