"""Names of the FinOps tables (contracts: the CLI, SQL users and tests use them)."""

from typing import Final

EVENT_COSTS: Final = "event_costs"
REASONING_CYCLES: Final = "reasoning_cycles"
AGENT_DAILY_METRICS: Final = "agent_daily_metrics"
AGENT_TYPE_ROI: Final = "agent_type_roi"
BUDGET_COMPLIANCE: Final = "budget_compliance"
PRICING_FILE: Final = "pricing.yaml"
BUDGETS_FILE: Final = "budgets.yaml"
