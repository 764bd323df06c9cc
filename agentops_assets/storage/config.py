"""Where everything lives: ``AGENTOPS_HOME``, and optional lake, index and landing URIs.

The Delta lake (``AGENTOPS_LAKE_URI``), the LanceDB retrieval index (``AGENTOPS_INDEX_URI``) and
the landing folder (``AGENTOPS_LANDING_URI``) may live on object storage (``s3://``, ``gs://``,
``az://``); everything else under the home (knowledge, locks, Dagster's home) stays on the
machine's disk. Object-store
credentials and endpoint come from the usual environment variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...), read in one place here: :func:`delta_storage_options` for
deltalake and polars, :func:`lance_storage_options` for LanceDB. Readers and writers that
are not handed the options (pyarrow's filesystems, a bare ``DeltaTable(uri)``) read the same
variables themselves, so both routes reach the same store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_HOME = "./data"


@dataclass(frozen=True)
class Paths:
    """The storage layout under ``$AGENTOPS_HOME`` (the README's Configuration section shows it).

    ``lake_uri`` and ``index_uri`` may point at object storage (``s3://``, ``gs://``,
    ``az://``); every other folder is local to the machine running the code location.
    ``index_uri`` defaults to the ``lance`` folder under the home, ``landing_uri`` to its
    ``landing`` folder.
    """

    home: Path
    lake_uri: str
    index_uri: str = field(default="")
    landing_uri: str = field(default="")

    def __post_init__(self) -> None:
        if not self.index_uri:
            object.__setattr__(self, "index_uri", str(self.home / "lance"))
        if not self.landing_uri:
            object.__setattr__(self, "landing_uri", str(self.home / "landing"))

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """Resolve the layout from arguments, then ``AGENTOPS_HOME``, ``AGENTOPS_LAKE_URI``,
        ``AGENTOPS_INDEX_URI`` and ``AGENTOPS_LANDING_URI``."""
        root = Path(home or os.environ.get("AGENTOPS_HOME") or DEFAULT_HOME).expanduser().resolve()
        lake = os.environ.get("AGENTOPS_LAKE_URI") or str(root / "lake")
        index = os.environ.get("AGENTOPS_INDEX_URI") or str(root / "lance")
        landing = os.environ.get("AGENTOPS_LANDING_URI") or str(root / "landing")
        if is_local(landing):  # a link is kept as it is: the landing folder may be one
            landing = str(Path(landing.removeprefix("file://")).expanduser().absolute())
        return cls(
            home=root,
            lake_uri=lake.rstrip("/"),
            index_uri=index.rstrip("/"),
            landing_uri=landing.rstrip("/"),
        )

    @property
    def landing_is_local(self) -> bool:
        """Whether the landing folder is a folder on this machine (else an object-store prefix)."""
        return is_local(self.landing_uri)

    @property
    def landing(self) -> Path:
        """The landing folder on this machine; code that may see an object-store landing reads
        :attr:`landing_uri` instead.

        Raises:
            ValueError: ``AGENTOPS_LANDING_URI`` is an object-store URI, not a local folder.
        """
        if not self.landing_is_local:
            raise ValueError(
                f"The landing folder is on object storage ({self.landing_uri}); this command "
                "needs a local folder: unset AGENTOPS_LANDING_URI or point it at a local path."
            )
        return Path(self.landing_uri)

    @property
    def knowledge(self) -> Path:
        return self.home / "knowledge"

    @property
    def lance(self) -> Path:
        """The default local index folder; code reading the index uses :attr:`index_uri`,
        which may be elsewhere, on object storage too."""
        return self.home / "lance"

    @property
    def index_is_local(self) -> bool:
        """Whether the LanceDB index is a folder on this machine."""
        return is_local(self.index_uri)

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


# URI schemes of local files; any other scheme is an object store.
_LOCAL_SCHEMES = frozenset({"", "file"})
# The object-store settings read from the environment, per URI scheme. Only settings that
# delta-rs, polars and LanceDB all understand: an unknown key makes polars refuse the options.
_DELTA_SETTINGS: dict[str, tuple[str, ...]] = {
    "s3": (
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ALLOW_HTTP",
    ),
    "gs": ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY"),
    "az": ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"),
}
_SCHEME_FAMILY = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"} | dict.fromkeys(
    ("az", "abfs", "abfss", "adl", "azure"), "az"
)
# LanceDB names the S3 settings differently (its object_store keys).
_LANCE_NAMES = {
    "AWS_ENDPOINT_URL": "aws_endpoint",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_REGION": "aws_region",
    "AWS_ALLOW_HTTP": "allow_http",
}


def is_local(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` is a path on this machine (a plain path or ``file://``), not an object
    store (Windows drive letters are paths too)."""
    text = os.fspath(uri)
    scheme = urlparse(text).scheme
    return scheme in _LOCAL_SCHEMES or (len(scheme) == 1 and text[1:2] == ":")


def delta_storage_options(uri: str | os.PathLike[str]) -> dict[str, str]:
    """Object-store options for deltalake and polars on the table at ``uri``.

    Empty for a local path. For ``s3://`` the ``AWS_*`` settings present in the environment
    (endpoint, credentials, region, ``AWS_ALLOW_HTTP`` for a plain-HTTP local server);
    likewise ``GOOGLE_*`` for ``gs://`` and ``AZURE_*`` for ``az://``. Passing them changes
    nothing that the environment would not do by itself; it makes every call say where its
    settings come from. Concurrent writers need no option: delta-rs 1.x commits to S3 with
    conditional writes (see :mod:`agentops_assets.storage.lake`).
    """
    if is_local(uri):
        return {}
    family = _SCHEME_FAMILY.get(urlparse(os.fspath(uri)).scheme, "")
    names = _DELTA_SETTINGS.get(family, ())
    return {name: os.environ[name] for name in names if name in os.environ}


def lance_storage_options(uri: str | os.PathLike[str]) -> dict[str, str]:
    """Object-store options for LanceDB on the database at ``uri`` (empty for a local one).

    The same settings as :func:`delta_storage_options`, under LanceDB's names (``aws_endpoint``,
    ``allow_http``...).
    """
    return {
        _LANCE_NAMES.get(name, name.lower()): value
        for name, value in delta_storage_options(uri).items()
    }


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
