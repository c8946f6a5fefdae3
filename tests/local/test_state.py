"""The state file of `tickwatch local up`."""

from __future__ import annotations

import os
import sys

import pytest

from tickwatch.local.state import LocalState, process_start, state_path


def test_a_running_stack_is_found():
    LocalState(
        "http://127.0.0.1:5000", "us-east-1", os.getpid(), {}, "/tmp", started=process_start(os.getpid())
    ).write()
    assert LocalState.read().endpoint_url == "http://127.0.0.1:5000"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start times come from /proc")
def test_a_state_whose_pid_now_belongs_to_another_process_is_stale():
    # The stack died without cleaning up and its pid was reused: never signal that process.
    LocalState("http://127.0.0.1:5000", "us-east-1", os.getpid(), {}, "/tmp", started="1").write()
    assert LocalState.read() is None
    assert not state_path().exists()
