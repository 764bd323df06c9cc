"""Telemetry to versioned memory: one memory commit per reasoning cycle, applied exactly once."""
