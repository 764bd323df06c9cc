"""The deployment files (deploy/Dockerfile, deploy/helm/values.yaml, deploy/k8s/) as far as
this machine can check them: it has no Docker daemon and no Kubernetes cluster.

What the image would run is run here: the project is built into a wheel the way the Dockerfile
installs it (a regular install, not the checkout), that wheel alone serves the code location
with the image's command, and Dagster's own health check answers. The files agree with each
other and with the code: one module everywhere, every variable they set is one the code reads,
every file the image copies exists and is not excluded from the build context, no secret.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
WORKERS = ROOT / "deploy" / "k8s" / "celery-workers.yaml"
BIN = Path(sys.executable).parent


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _command() -> list[str]:
    (cmd,) = [args for name, args in _instructions() if name == "CMD"]
    return yaml.safe_load(cmd)  # the exec form is a JSON array


def _module(args: list[str]) -> str:
    return args[args.index("--module-name") + 1]


def _code_env_names() -> set[str]:
    names: set[str] = set()
    for folder in ("agentops_assets", "memory"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"AGENTOPS_[A-Z_]+", path.read_text()))
    return names


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_one_module_in_the_image_the_chart_and_the_workspace() -> None:
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert _module(_command()) == module
    assert _module(deployment["dagsterApiGrpcArgs"]) == module
    assert deployment["port"] == int(_command()[_command().index("--port") + 1])


def test_the_image_copies_only_what_exists_and_the_build_context_keeps() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [
        shlex.split(args)
        for name, args in _instructions()
        if name == "COPY" and not args.startswith("--from")
    ]
    assert copies, "the Dockerfile copies nothing from the checkout"
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            top = source.split("/")[0]
            assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), (
                f"COPY {source}, but .dockerignore leaves it out of the build context"
            )
    # The install is pinned by the lock CI tests, and includes the scale-out extra.
    (install,) = [args for name, args in _instructions() if name == "RUN" and "pip install" in args]
    assert "-c requirements.lock" in install and "[cluster]" in install
    assert "-e " not in install, "an editable install would point into the build stage"


def test_every_variable_the_deployment_sets_is_one_the_code_reads() -> None:
    values = yaml.safe_load(VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    workers = yaml.safe_load(WORKERS.read_text())
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    worker_env = {item["name"]: item for item in container["env"]}
    known = _code_env_names()
    for name in [*deployment["env"], *worker_env]:
        if name.startswith("AGENTOPS_"):
            assert name in known, f"{name} is set by the deployment but read nowhere in the code"
    # The workers see the same lake, index and broker as the code location.
    for name in ("AGENTOPS_LAKE_URI", "AGENTOPS_INDEX_URI", "AGENTOPS_CELERY_BROKER"):
        assert worker_env[name]["value"] == deployment["env"][name]
    assert container["image"] == (
        f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    )


def test_the_workers_config_is_in_the_image_and_its_variables_are_set() -> None:
    workers = yaml.safe_load(WORKERS.read_text())
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    config_path = command[command.index("--config-yaml") + 1]
    destinations = {
        shlex.split(args)[-1]: shlex.split(args)[:-1]
        for name, args in _instructions()
        if name == "COPY" and not args.startswith("--from")
    }
    assert config_path in destinations, f"the image has no {config_path}"
    (source,) = destinations[config_path]
    config = yaml.safe_load((ROOT / source).read_text())

    def env_sources(node: object) -> set[str]:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                return {node["env"]}
            return set().union(*(env_sources(value) for value in node.values()))
        return set()

    needed = env_sources(config)
    assert needed, "the worker config reads no variable: the broker would be written in it"
    assert needed <= {item["name"] for item in container["env"]}


def test_no_secret_is_written_in_the_deployment_files() -> None:
    texts = {path.name: path.read_text() for path in (DOCKERFILE, VALUES, WORKERS)}
    values = yaml.safe_load(texts["values.yaml"])
    assert values["postgresql"].get("postgresqlPassword") in (None, "")
    assert values["generatePostgresqlPasswordSecret"] is False
    for name, text in texts.items():
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), name
        assert not re.search(r"(?i)aws_secret_access_key\s*[:=]\s*\S{20,}", text), name
        assert "-----BEGIN" not in text, name
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": "agentops-lake"} in deployment["envSecrets"]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as the image installs it: a wheel, installed without the checkout."""
    work = tmp_path_factory.mktemp("image")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(work / "wheels"), str(ROOT)],
        check=True, cwd=work, timeout=300,
    )  # fmt: skip
    (wheel,) = (work / "wheels").glob("agentops_grid-*.whl")
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    return target


def test_the_wheel_carries_what_the_code_location_needs(installed_wheel: Path) -> None:
    for pattern in (
        "policies/*.rego",
        "policies/*.yaml",
        "agentops_assets/service/templates/*.html",
        "agentops_assets/service/static/*",
        "agentops_assets/examples/knowledge/**/*.md",
    ):
        assert list(installed_wheel.glob(pattern)), f"the wheel lacks {pattern}"


def test_the_images_command_serves_the_code_location_from_the_wheel(
    installed_wheel: Path, tmp_path: Path
) -> None:
    command = _command()
    port = _free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    # Only the installed wheel and the venv's dependencies: not the checkout, not its cwd.
    env = {
        **os.environ,
        "PYTHONPATH": str(installed_wheel),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AGENTOPS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    (tmp_path / "dagster").mkdir()
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            check = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if check.returncode == 0:
                break
            assert server.poll() is None, server.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the code server did not become healthy"
            time.sleep(1)
        origin = subprocess.run(
            [sys.executable, "-c", "import agentops_assets; print(agentops_assets.__file__)"],
            env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert origin.startswith(str(installed_wheel)), origin
    finally:
        server.terminate()
        server.wait(timeout=30)
