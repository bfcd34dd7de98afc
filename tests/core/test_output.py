"""The `--json` envelope is an interface: scripts depend on its shape."""

from __future__ import annotations

import json

from tests.conftest import RedisServer, run_cli
from toolforgectl.core.output import ENVELOPE_KEYS


def test_every_json_answer_has_the_stable_envelope(redis_server: RedisServer) -> None:
    redis_server.client().hset("prefix:a", ".*", "http://127.0.0.1:1")
    for argv, command in [
        (("routes", "list", "--json"), "routes list"),
        (("routes", "show", "a", "--json", "--no-probe"), "routes show"),
        (("routes", "set", "a", "http://127.0.0.1:2", "--json", "--dry-run"), "routes set"),
        (("debug", "redis", "--json"), "debug redis"),
        (("debug", "history", "a", "--json"), "debug history"),
    ]:
        result = run_cli("--redis", redis_server.url, *argv)
        assert result.code == 0, result.stderr
        envelope = json.loads(result.stdout)
        assert tuple(envelope) == ENVELOPE_KEYS == ("command", "ok", "data")
        assert envelope["command"] == command and envelope["ok"] is True
