"""Validators: hostile input is refused; whatever they accept is safe to store."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolforgectl.core import pcre, validate
from toolforgectl.core.errors import ValidationError

HOSTILE_TOOLS = [
    "",
    "../x",
    "a b",
    "a/b",
    "x..y",
    "A",
    "-x",
    "x-",
    "tool\n",
    "t\x00",
    "é",
    "x" * 64,
    "x" * 10_000,
]
HOSTILE_BACKENDS = [
    "http://u:p@127.0.0.1:1",
    "ftp://127.0.0.1:21",
    "http://127.0.0.1:0",
    "http://127.0.0.1:70000",
    "http://127.0.0.1",
    "http://localhost:8000",
    "http://127.0.0.1:8000/admin",
    "http://127.0.0.1:8000/../x",
    "http://127.0.0.1:8000?x=1",
    "http://127.0.0.1:8000#f",
    "http://127.0.0.1:80 00",
    "http://0.0.0.0:8000",
    "http://127.0.0.1:8000\r\nX: y",
    "http://" + "1" * 10_000 + ":80",
    "javascript:alert(1)",
    "http://[::1:80",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_TOOLS)
def test_hostile_tool_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        validate.tool_name(name)


@pytest.mark.parametrize("name", ["dplbot", "admin", "a", "tool-2", "x" * 63, "404-tool", "0a"])
def test_ordinary_tool_names_are_accepted(name: str) -> None:
    assert validate.tool_name(name) == name


@pytest.mark.parametrize("name", ["0", "10", "127", "8081"])
def test_all_digit_tool_names_are_refused_as_an_ip_address_label(name: str) -> None:
    # In host mode `10.0.0.5` (or 10.toolforge.org) would otherwise select a tool named "10".
    with pytest.raises(ValidationError, match="all digits"):
        validate.tool_name(name)


def test_a_domain_name_may_have_all_digit_labels_that_a_tool_name_may_not() -> None:
    # The all-digit rule is about tool names (host mode's left-most label), not every DNS label.
    assert validate.domain_name("eqiad1.wikimedia.cloud") == "eqiad1.wikimedia.cloud"
    assert validate.domain_name("tools.2020.example") == "tools.2020.example"
    with pytest.raises(ValidationError, match="not dot-separated lowercase DNS labels"):
        validate.domain_name("https://toolforge.org/")


@pytest.mark.parametrize("url", HOSTILE_BACKENDS)
def test_hostile_backends_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        validate.backend(url)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://127.0.0.1:443/", "https://127.0.0.1:443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://10.0.0.5:41234", "http://10.0.0.5:41234"),
    ],
)
def test_backends_are_canonicalised(url: str, canonical: str) -> None:
    assert validate.backend(url).url == canonical


@pytest.mark.parametrize("pattern", ["", "(", "a" * 257, "x\ny", "[z-a]"])
def test_bad_routes_are_refused(pattern: str) -> None:
    with pytest.raises(ValidationError):
        validate.route(pattern)


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        # Python's re takes these; nginx's PCRE refuses them, so the route would never match.
        ("\\u0041", "is not a regex nginx can use (PCRE: PCRE"),
        ("^/\\N{U+41}", "is not a regex nginx can use (PCRE: "),
        # Python reads a repeat; PCRE before 10.43 (Debian 12's nginx) reads the text "{,3}".
        ("a{,3}", "has {,3}, which PCRE versions read differently"),
        ("a{,}", "has {,}, which PCRE versions read differently"),
        ("^/x{1, 3}", "has {1, 3}, which PCRE versions read differently"),
    ],
)
def test_routes_python_reads_unlike_nginx_are_refused_saying_why(pattern: str, said: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate.route(pattern)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "pattern",
    [
        "^/\\x{41}",  # PCRE's hex escape (Python refuses it)
        "(?<name>x)\\k<name>",  # PCRE's named back-reference (Python refuses it)
        "\\h+",  # horizontal space
        "[[:alpha:]]+",
        "a{1,3}",
        "a{3}",
        "a{}",  # not a quantifier anywhere: the text
        "\\{,3}",  # escaped: the text in every version
        "[{,3}]",  # in a class: the characters
        "\\Q{,3}\\E",  # quoted: the text
        "^/(a+)+$",  # compiles; what it costs is bounded by the match limit, not here
    ],
)
def test_routes_pcre_reads_alike_in_every_version_are_accepted(pattern: str) -> None:
    assert validate.route(pattern) == pattern


@given(st.text(max_size=80))
def test_accepted_tool_names_are_single_safe_labels(text: str) -> None:
    try:
        name = validate.tool_name(text)
    except ValidationError:
        return
    assert re.fullmatch(r"[a-z0-9-]{1,63}", name)
    assert not name.startswith("-") and not name.endswith("-")
    assert not name.isdigit()


@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda scheme, host, port, tail: f"{scheme}://{host}:{port}{tail}",
            st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
            st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
            st.integers(min_value=-5, max_value=70_000),
            st.sampled_from(["", "/", "/x", "?q", "#f", "@h"]),
        ),
    )
)
def test_accepted_backends_are_plain_ip_and_port_urls(text: str) -> None:
    try:
        url = validate.backend(text).url
    except ValidationError:
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert parts.username is None and parts.password is None
    assert parts.path == "" and not parts.query and not parts.fragment
    assert parts.port is not None and 1 <= parts.port <= 65535
    assert validate.backend(url).url == url


@given(st.one_of(st.text(max_size=300), st.text("a{},0123 \\[]()^$.*+?|:Q", max_size=30)))
def test_accepted_routes_compile_in_pcre_and_are_printable(text: str) -> None:
    try:
        pattern = validate.route(text)
    except ValidationError:
        return
    assert pattern.isprintable() and len(pattern) <= validate.ROUTE_MAX
    assert pcre.compile_error(pattern) is None


def test_a_backend_is_a_parsed_value_whose_url_is_what_the_store_keeps() -> None:
    parsed = validate.backend("https://[::1]:8443/")
    assert (parsed.scheme, str(parsed.host), parsed.port) == ("https", "::1", 8443)
    assert parsed.url == "https://[::1]:8443" == str(parsed)


@pytest.mark.parametrize(
    ("check", "text"),
    [(validate.reason, "x" * 501), (validate.reason, "two\nlines"), (validate.task_id, "T1 T2")],
)
def test_a_reason_or_task_id_that_would_break_the_audit_line_is_refused(
    check: Callable[[str], str], text: str
) -> None:
    with pytest.raises(ValidationError):
        check(text)
