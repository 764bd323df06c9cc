"""Where everything lives: one setting, ``AGENTOPS_HOME``, and an optional lake URI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "./data"


@dataclass(frozen=True)
class Paths:
    """The storage layout under ``$AGENTOPS_HOME`` (the README's Configuration section shows it).

    ``lake_uri`` may point at object storage (``s3://``, ``gs://``, ``az://``); every other
    folder is local to the machine running the code location.
    """

    home: Path
    lake_uri: str

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """Resolve the layout from arguments, then ``AGENTOPS_HOME`` / ``AGENTOPS_LAKE_URI``."""
        root = Path(home or os.environ.get("AGENTOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
        lake = os.environ.get("AGENTOPS_LAKE_URI") or str(root / "lake")
        return cls(home=root, lake_uri=lake.rstrip("/"))

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def knowledge(self) -> Path:
        return self.home / "knowledge"

    @property
    def lance(self) -> Path:
        return self.home / "lance"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def simulator(self) -> Path:
        return self.home / "simulator"

    @property
    def locks(self) -> Path:
        return self.home / ".locks"

    @property
    def policies(self) -> Path:
        """Policy files (budgets.yaml, pricing.yaml): ``AGENTOPS_POLICIES``, else shipped ones."""
        configured = os.environ.get("AGENTOPS_POLICIES")
        if configured:
            return Path(configured).expanduser().resolve()
        import policies

        return Path(policies.__file__).parent

    def policy_file(self, name: str) -> Path:
        """The policy file ``name`` in :attr:`policies`, else the shipped default of that file.

        A user who points ``AGENTOPS_POLICIES`` at a folder may override one file only; every
        file the folder lacks is the shipped one.
        """
        path = self.policies / name
        if path.exists():
            return path
        import policies

        return Path(policies.__file__).parent / name

    def table_uri(self, name: str) -> str:
        """URI of the Delta table called ``name``."""
        return f"{self.lake_uri}/{name}"


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the ``with`` block, and
    restore them afterwards (e.g. to run the pipeline on another home in this process)."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
