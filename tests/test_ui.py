"""`agentops ui` serves the Dagster UI and stops its whole process tree on a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agentops_assets.storage.config import Paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline and (proc / "stat").read_text().split()[2] != "Z":
            found.append(int(proc.name))
    return found


def test_ui_serves_and_one_signal_stops_webserver_and_daemon(paths: Paths) -> None:
    port = _free_port()
    env = {**os.environ, "AGENTOPS_HOME": str(paths.home)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "agentops_assets", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                    assert b"dagster_webserver_version" in r.read()
                    break
            except OSError:
                assert time.monotonic() < deadline, "the UI did not answer within 90 s"
                assert ui.poll() is None, "agentops ui exited early"
                time.sleep(0.5)
        assert len(_processes_mentioning(str(paths.dagster_home))) >= 2  # webserver + daemon
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _processes_mentioning(str(paths.dagster_home)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_mentioning(str(paths.dagster_home)) == []
    finally:
        if ui.poll() is None:
            ui.kill()
