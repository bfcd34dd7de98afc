"""The monitor's restart history, persisted so the throttle survives a monitor restart.

The original kept it in memory: every monitor restart (a crash loop under `Restart=always`)
forgot it, and a broken tool was restarted on every pass again. Here it is a small JSON file,
`{"<tool>": [<unix time of each attempt>, ...]}`, replaced atomically after every change, so a
monitor killed at any moment leaves either the old or the new history, never half of one.
Attempts older than the window are dropped when it is written.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from toolforgectl.core import logs

log = logging.getLogger("webservicemonitor")


class RestartHistory:
    """When each tool was last restarted, at most `limit` times per `window` seconds."""

    def __init__(self, path: Path, limit: int, window: float) -> None:
        self.path, self.limit, self.window = path, limit, window
        self.attempts: dict[str, list[float]] = self._load()

    def _load(self) -> dict[str, list[float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logs.event(log, "restart history unreadable; starting without it", logging.ERROR, error=str(exc))
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(tool): [float(t) for t in times if isinstance(t, int | float)]
            for tool, times in data.items()
            if isinstance(times, list)
        }

    def recent(self, tool: str, now: float) -> list[float]:
        """`tool`'s attempts within the window, oldest first."""
        return sorted(t for t in self.attempts.get(tool, []) if now - t < self.window)

    def throttled(self, tool: str, now: float) -> bool:
        """Whether `tool` had `limit` attempts within the window already."""
        return len(self.recent(tool, now)) >= self.limit

    def record(self, tool: str, now: float) -> None:
        """Remember an attempt (before it runs: a failed attempt counts too) and save at once."""
        self.attempts[tool] = [*self.recent(tool, now), now]
        self.save(now)

    def save(self, now: float) -> None:
        """Write the history (without expired attempts) atomically."""
        kept = {tool: times for tool in sorted(self.attempts) if (times := self.recent(tool, now))}
        self.attempts = kept
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as file:
            json.dump(kept, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, self.path)
