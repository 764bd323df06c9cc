"""Errors of the alerts library: one base class, one subclass per kind of problem."""

from __future__ import annotations

from agentops_assets.storage.policy_file import PolicyFileError


class AlertsError(Exception):
    """Base class of every alerts error."""


class AlertsPolicyError(AlertsError, PolicyFileError):
    """``alerts.yaml`` is invalid; the message names the file and the line, never a URL."""
