"""Control: autonomy states decided from evidence, supervisors' overrides, the control file.

A plain library (no dagster import): the Dagster assets and the CLI call into it.
"""

from agentops_assets.control.overrides import ControlError
from agentops_assets.control.policy import STATES, AutonomyPolicy, load_autonomy_policy
from agentops_assets.control.refresh import AutonomyUpdate, refresh_autonomy
from agentops_assets.control.states import Override, Release, evaluate

__all__ = [
    "STATES",
    "AutonomyPolicy",
    "AutonomyUpdate",
    "ControlError",
    "Override",
    "Release",
    "evaluate",
    "load_autonomy_policy",
    "refresh_autonomy",
]
