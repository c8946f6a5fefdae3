"""`tickwatch local up`, other commands using it without flags, and `tickwatch local down`."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    """A free port whose next three are free too: `local up` serves the query API, the WebSocket
    API and the dashboard there."""
    while True:
        with contextlib.ExitStack() as probes:
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            try:
                for neighbour in range(port + 1, port + 4):
                    probes.enter_context(socket.socket()).bind(("127.0.0.1", neighbour))
            except OSError:
                continue
            return port


def tickwatch(*argv: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tickwatch", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def environment(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def test_local_up_serves_the_other_commands_until_local_down(tmp_path, environment):
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "tickwatch", "local", "up", "--port", str(port), "--workdir", str(tmp_path / "work")],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    state_file = tmp_path / "state" / "tickwatch" / "local.json"
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists() and time.monotonic() < deadline and up.poll() is None:
            time.sleep(0.1)
        assert state_file.exists(), up.stdout.read() if up.poll() is not None else "no state file"
        state = json.loads(state_file.read_text())
        assert state["endpoint_url"] == f"http://127.0.0.1:{port}"
        assert state["outputs"]["MarketTableName"] == "tickwatch-local-markettable"

        added = tickwatch("rules", "add", "AAPL", "--above", "230", env=environment)
        assert added.returncode == 0, added.stderr
        listed = tickwatch("rules", "list", env=environment)
        assert "AAPL-above-230" in listed.stdout
        fed = tickwatch("fetch", "--count", "200", "--rate", "0", "--seed", "1", "--symbols", "AAPL", env=environment)
        assert fed.returncode == 0, fed.stderr
        assert "sent       200 ticks to tickwatch-local-tickstream" in fed.stderr

        key = tickwatch("api-key", env=environment)
        assert key.returncode == 0, key.stderr
        assert key.stdout.strip() == state["outputs"]["QueryApiKey"]
        assert state["outputs"]["QueryApiUrl"] == f"http://127.0.0.1:{port + 1}/v1"
        assert state["outputs"]["LiveApiUrl"] == f"ws://127.0.0.1:{port + 2}/live"
        assert state["outputs"]["DashboardUrl"] == f"http://127.0.0.1:{port + 3}/"
        with urllib.request.urlopen(f"{state['outputs']['DashboardUrl']}config.json", timeout=10) as answer:
            assert json.loads(answer.read()) == {
                "queryApiUrl": state["outputs"]["QueryApiUrl"],
                "liveApiUrl": state["outputs"]["LiveApiUrl"],
            }
        rules = urllib.request.Request(
            f"{state['outputs']['QueryApiUrl']}/rules", headers={"x-api-key": key.stdout.strip()}
        )
        with urllib.request.urlopen(rules, timeout=10) as answer:
            assert [rule["rule_id"] for rule in json.loads(answer.read())["rules"]] == ["AAPL-above-230"]

        down = tickwatch("local", "down", env=environment)
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=30) == 0
        assert not state_file.exists()
        again = tickwatch("local", "down", env=environment)
        assert again.returncode == 1
        assert "no local stack is running" in again.stderr
    finally:
        if up.poll() is None:
            up.kill()
