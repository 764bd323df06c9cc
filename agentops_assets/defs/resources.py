"""Resources, bound once in ``definitions.py``."""

import dataclasses

import dagster as dg
from pydantic import Field

from agentops_assets.storage.config import Paths


class LakeResource(dg.ConfigurableResource):
    """Where the platform's data lives.

    Unset fields fall back to ``AGENTOPS_HOME`` (default ``./data``) and ``AGENTOPS_LAKE_URI``.
    """

    home: str | None = Field(default=None, description="AGENTOPS_HOME folder.")
    lake_uri: str | None = Field(default=None, description="Delta lake root URI.")

    @property
    def paths(self) -> Paths:
        paths = Paths.from_env(self.home)
        if not self.lake_uri:
            return paths
        return dataclasses.replace(paths, lake_uri=self.lake_uri.rstrip("/"))
