"""The request parser as a pure function: fuzzed with hypothesis, and pinned on the original bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolforgectl.core import validate, wire
from toolforgectl.core.errors import BadRequestError

LIMITS = wire.Limits(max_line=64, max_lines=4)
MODES: list[wire.TokenLine] = ["required", "optional", "absent"]

lines = st.one_of(
    st.sampled_from([*wire.COMMANDS, ".*", "http://127.0.0.1:8000", "tf1.x.0.abc", "", " register "]),
    st.sampled_from(["a{4294967296}", "(" * 60 + ")" * 60, "(?P<a>x)(?P=b)", "[z-a]", "\\"]),
    st.text(max_size=80),
)
requests = st.lists(lines, max_size=7).map(lambda parts: "\n".join(parts).encode("utf-8", "surrogatepass"))
raw = st.one_of(st.binary(max_size=400), requests, requests.map(lambda b: b + b"\n"))


@settings(max_examples=1500, deadline=None)
@given(buffer=raw, mode=st.sampled_from(MODES), ended=st.booleans())
def test_parse_is_total_and_only_accepts_valid_requests(
    buffer: bytes, mode: wire.TokenLine, ended: bool
) -> None:
    try:
        parsed = wire.parse(buffer, mode, LIMITS, ended=ended)
    except BadRequestError as exc:
        assert exc.reply == wire.FAIL or (exc.reply.isascii() and b"\n" not in exc.reply)
        assert 0 < len(exc.reply) <= wire.SENTENCE_MAX
        return
    if isinstance(parsed, wire.Incomplete):
        assert parsed.missing in ("command", "route", "destination", "token")
        return
    assert parsed.command in wire.COMMANDS
    assert validate.route(parsed.route) == parsed.route
    assert (parsed.destination is None) == (parsed.command == wire.UNREGISTER)
    if parsed.destination is not None:
        assert validate.backend(parsed.destination.url) == parsed.destination
    assert (parsed.token is not None) if mode == "required" else True
    assert parsed.token is None if mode == "absent" else True


@settings(max_examples=300, deadline=None)
@given(
    command=st.sampled_from(wire.COMMANDS),
    port=st.integers(1, 65535),
    token=st.one_of(
        st.none(), st.from_regex(r"tf1\.[a-z]{1,10}\.[0-9]{1,3}\.[A-Za-z0-9_-]{43}", fullmatch=True)
    ),
)
def test_what_clients_encode_parses_back(command: str, port: int, token: str | None) -> None:
    destination = None if command == wire.UNREGISTER else f"http://127.0.0.1:{port}"
    mode: wire.TokenLine = "required" if token else "absent"

    parsed = wire.parse(wire.encode(command, ".*", destination, token), mode, wire.Limits())

    expected = None if destination is None else validate.backend(destination)
    assert parsed == wire.Request(command, ".*", expected, token)


def test_the_original_three_lines_parse_byte_for_byte() -> None:
    parsed = wire.parse(b"register\n.*\nhttp://10.68.17.13:41234\n", "absent", wire.Limits())

    assert parsed == wire.Request("register", ".*", validate.backend("http://10.68.17.13:41234"), None)


@pytest.mark.parametrize(
    ("buffer", "missing"),
    [(b"", "command"), (b"regis", "command"), (b"register\n", "route"), (b"register\n.*\n", "destination")],
)
def test_incomplete_requests_name_the_missing_line(buffer: bytes, missing: str) -> None:
    assert wire.parse(buffer, "absent", wire.Limits()) == wire.Incomplete(missing)


def test_a_required_token_line_is_waited_for_until_the_request_ends() -> None:
    three = b"register\n.*\nhttp://127.0.0.1:8000\n"

    assert wire.parse(three, "required", wire.Limits()) == wire.Incomplete("token")
    assert wire.parse(three, "required", wire.Limits(), ended=True) == wire.Incomplete("token")
    assert isinstance(wire.parse(three, "absent", wire.Limits()), wire.Request)


@pytest.mark.parametrize("command", [b"register\n.*\nhttp://127.0.0.1:8000\n", b"unregister\n.*\n"])
def test_an_optional_token_line_is_waited_for_until_the_request_ends(command: bytes) -> None:
    # The token line may arrive in a later TCP segment: three lines are not yet the whole request.
    assert wire.parse(command, "optional", wire.Limits()) == wire.Incomplete("token")
    assert wire.parse(command + b"tf1.x", "optional", wire.Limits(), ended=True) == wire.Incomplete("token")
    with_token = wire.parse(command + b"tf1.x.0.m\n", "optional", wire.Limits())
    assert isinstance(with_token, wire.Request) and with_token.token == "tf1.x.0.m"
    at_the_end = wire.parse(command, "optional", wire.Limits(), ended=True)
    assert isinstance(at_the_end, wire.Request) and at_the_end.token is None
    empty_line = wire.parse(command + b"\n", "optional", wire.Limits())  # "no token", said at once
    assert isinstance(empty_line, wire.Request) and empty_line.token is None


def test_crlf_lines_from_telnet_style_clients_are_accepted() -> None:
    parsed = wire.parse(b"unregister\r\n.*\r\n", "absent", wire.Limits())

    assert parsed == wire.Request("unregister", ".*", None, None)
