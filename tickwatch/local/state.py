"""The state file of a running `tickwatch local up`, so other commands find the local stack."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_PATH = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "tickwatch" / "local.json"


@dataclass(frozen=True, slots=True)
class LocalState:
    endpoint_url: str
    region: str
    pid: int
    outputs: dict[str, str]
    outbox: str

    def write(self, path: Path = STATE_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path = STATE_PATH) -> LocalState | None:
        """The state of a local stack that is still running, or None."""
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not _alive(state.pid):
            path.unlink(missing_ok=True)  # left behind by a stack that did not stop cleanly
            return None
        return state

    @staticmethod
    def remove(path: Path = STATE_PATH) -> None:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
