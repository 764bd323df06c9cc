"""Declarative automation: data that lands flows downstream without a person.

Assets declare when they should run (``AutomationCondition.eager()`` on the memory and today's
FinOps partitions); this sensor evaluates those conditions. Dagster's default automation sensor
starts stopped, so the code location brings its own, running by default.
"""

import dagster as dg

AUTOMATION_SENSOR = "agentops_automation_sensor"

automation_sensor = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR,
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Runs the assets whose automation condition is met: after an ingest, memory_facts, the "
        "retrieval index and today's FinOps partition are refreshed."
    ),
)

defs = dg.Definitions(sensors=[automation_sensor])
