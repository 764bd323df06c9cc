"""AgentOps Grid: the Dagster code location and the telemetry lakehouse."""
