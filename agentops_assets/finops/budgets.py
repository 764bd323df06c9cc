"""Spend caps per agent type, read from ``policies/budgets.yaml`` (policy as code).

Each entry caps the daily and/or monthly spend of one agent type, optionally only the spend
with one provider or on models matching a glob. ``agent_type: "*"`` is a default: it applies
to every agent type that has no entry of its own with the same provider and model scope.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Self

import pydantic

from agentops_assets.storage.policy_file import PolicyEntry, PolicyFileError, read_entries

ANY_AGENT = "*"
MAX_CAP_USD: Final = 1e9


def _at_most_max_cap(usd: float) -> float:
    # A cap of 1e17 is a typo, and figures that large lose their cents in a float.
    if usd > MAX_CAP_USD:
        raise ValueError(f"must be at most {MAX_CAP_USD:,.0f} USD (leave it out for no cap)")
    return usd


_Name = Annotated[str, pydantic.Field(min_length=1)]
_Usd = Annotated[
    float, pydantic.Field(gt=0, allow_inf_nan=False), pydantic.AfterValidator(_at_most_max_cap)
]


class Budget(PolicyEntry):
    """One cap on an agent type's spend, optionally narrowed to a provider and/or model glob."""

    agent_type: _Name
    provider: _Name | None = None
    model: _Name | None = None
    daily_usd: _Usd | None = None
    monthly_usd: _Usd | None = None
    warn_at: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.8

    @pydantic.field_validator("provider")
    @classmethod
    def _lower_provider(cls, provider: str | None) -> str | None:
        # genai-prices provider ids are lower-case; "Anthropic" in a hand-written file means it.
        return provider.lower() if provider is not None else None

    @pydantic.model_validator(mode="after")
    def _has_a_cap(self) -> Self:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("a budget needs daily_usd, monthly_usd or both")
        return self

    @property
    def scope(self) -> tuple[str, str | None, str | None]:
        """``(agent_type, provider, model)``: what this budget counts; unique within a file.

        The model glob is lower-cased because it matches case-insensitively.
        """
        model = self.model.lower() if self.model is not None else None
        return (self.agent_type, self.provider, model)

    @property
    def budget_id(self) -> str:
        """A readable, unique name, e.g. ``"FinanceAgent provider=anthropic"``."""
        parts = [self.agent_type]
        if self.provider is not None:
            parts.append(f"provider={self.provider}")
        if self.model is not None:
            parts.append(f"model={self.model}")
        return " ".join(parts)


def load_budgets(path: Path) -> list[Budget]:
    """The budgets listed in the policy file at ``path``, in file order.

    Args:
        path: Usually ``policies/budgets.yaml``. A missing file means no budgets.

    Returns:
        The validated budgets.

    Raises:
        PolicyFileError: The file is invalid, or two entries have the same agent type,
            provider and model; the message names the line to fix.
    """
    if not path.exists():
        return []
    entries = read_entries(path, section="budgets", entry=Budget)
    first_line: dict[tuple[str, str | None, str | None], int] = {}
    for line, budget in entries:
        if budget.scope in first_line:
            raise PolicyFileError(
                str(path),
                line,
                f"budget '{budget.budget_id}' is already defined on line "
                f"{first_line[budget.scope]}; merge the two entries.",
            )
        first_line[budget.scope] = line
    return [budget for _, budget in entries]
