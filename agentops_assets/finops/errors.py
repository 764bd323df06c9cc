"""Errors of the FinOps library: one base class, one subclass per kind of problem."""

from __future__ import annotations


class FinopsError(Exception):
    """Base class of every FinOps error."""


class PolicyFileError(FinopsError, ValueError):
    """A policy file (pricing.yaml, budgets.yaml) is invalid; the message names the line."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem
