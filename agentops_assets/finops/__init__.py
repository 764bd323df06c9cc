"""Cognitive FinOps as a plain library (no Dagster): what agents cost and what they are worth.

- ``pricing``: a cost for every LLM call (reported, genai-prices, or policies/pricing.yaml).
- ``cycles``, ``metrics``, ``roi``: reasoning cycles, per-agent daily metrics, ROI per type.
- ``budgets``, ``compliance``: caps from policies/budgets.yaml and spend against them.
- ``refresh``: reads the lake, computes, and replaces the days of a range in each table.

The modules are imported one by one (not re-exported here) so that commands which only need
table names do not pay for loading the price data.
"""
