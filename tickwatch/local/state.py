"""The state file of a running `tickwatch local up`, so other commands find the local stack."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def state_path() -> Path:
    """$XDG_STATE_HOME/tickwatch/local.json (read when asked, so tests and users can point it elsewhere)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tickwatch" / "local.json"


@dataclass(frozen=True, slots=True)
class LocalState:
    endpoint_url: str
    region: str
    pid: int
    outputs: dict[str, str]
    outbox: str
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    # When the process started (Linux), so a later process that got the same pid is not taken
    # for the stack: `local down` must never signal someone else's process.
    started: str | None = None

    def write(self, path: Path | None = None) -> None:
        path = path or state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path | None = None) -> LocalState | None:
        """The state of a local stack that is still running, or None."""
        path = path or state_path()
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not _alive(state.pid) or (state.started is not None and process_start(state.pid) != state.started):
            path.unlink(missing_ok=True)  # left behind by a stack that did not stop cleanly
            return None
        return state

    @staticmethod
    def remove(path: Path | None = None) -> None:
        (path or state_path()).unlink(missing_ok=True)


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (/proc, Linux), or None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after "pid (command)": field 3 onwards
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
