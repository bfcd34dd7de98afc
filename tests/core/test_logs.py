"""The one logging setup: JSON lines with ECS names, or text; secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from toolforgectl.core import logs, tokens

TOKEN = tokens.mint(b"k" * 32, "mytool", 4)
MAC = TOKEN.rsplit(".", 1)[1]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Where the root logger writes during the test; the previous handlers come back after it."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_json_lines_carry_the_ecs_fields_and_the_events_own(output: io.StringIO) -> None:
    logs.setup("json", "INFO", output)

    logs.event(logging.getLogger("proxylistener"), "register from 10.0.0.5: ok", tool="mytool", ms=1.5)
    logging.getLogger("proxylistener").debug("not at INFO")

    (line,) = output.getvalue().splitlines()
    entry = json.loads(line)
    assert list(entry)[:4] == ["@timestamp", "log.level", "log.logger", "message"]
    assert entry["log.level"] == "info" and entry["log.logger"] == "proxylistener"
    assert entry["message"] == "register from 10.0.0.5: ok"
    assert (entry["tool"], entry["ms"]) == ("mytool", 1.5)
    assert entry["@timestamp"].endswith("Z") and "T" in entry["@timestamp"]


def test_an_exception_is_one_json_line_with_its_type_message_and_trace(output: io.StringIO) -> None:
    logs.setup("json", "INFO", output)

    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("kube2proxy").exception("the batch failed")

    (line,) = output.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["log.level"], entry["error.type"], entry["error.message"]) == (
        "error",
        "ValueError",
        "bad\nvalue",
    )
    assert "Traceback" in entry["error.stack_trace"]


def test_text_is_one_readable_line_with_key_value_pairs(output: io.StringIO) -> None:
    logs.setup("text", "INFO", output)

    logs.event(logging.getLogger("proxylistener"), "stopping", logging.WARNING, in_flight=2, why="sig term")

    line = output.getvalue().rstrip("\n")
    assert line.endswith(' WARNING proxylistener: stopping in_flight=2 why="sig term"')
    assert "\n" not in line


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_no_token_reaches_the_log_wherever_it_hides(output: io.StringIO, log_format: str) -> None:
    logs.setup(log_format, "INFO", output)
    log = logging.getLogger("proxyclient")

    log.info("sending %s to the proxy", TOKEN)
    logs.event(log, "request", route=TOKEN, token="not shaped like one", password="hunter2")
    try:
        raise RuntimeError(f"refused: {TOKEN}")
    except RuntimeError:
        log.exception("failed")

    text = output.getvalue()
    assert MAC not in text and "not shaped like one" not in text and "hunter2" not in text
    assert text.count("tf1.mytool.4.[REDACTED]") >= 3, "what is not secret (tool, generation) stays"


def test_setup_replaces_earlier_handlers_instead_of_doubling_lines(output: io.StringIO) -> None:
    logs.setup("json", "INFO", io.StringIO())
    logs.setup("json", "INFO", output)

    logging.getLogger("kube2proxy").info("once")

    assert len(output.getvalue().splitlines()) == 1
