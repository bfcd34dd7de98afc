"""Every setting of every section takes only its own type: YAML never turns "80" into 80 or yes into 1.

Walked over the sections' fields, so a setting added later without a strict type fails here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from toolforgectl.core import config
from toolforgectl.core.errors import ConfigError

BASE = "proxies: [{name: p1}]\n"
# nginx reads `worker_processes 4;` like "4": these text settings take a number too.
NGINX_NUMBERS = {"worker_processes", "rate_limit_zone_size", "access_log_buffer", "route_cache_size"}
NGINX_NUMBERS |= {"state_cache_size", "metrics_dict_size", "client_max_body_size"}
SECTIONS = {
    "dataplane": config.DataPlane,
    "proxylistener": config.ProxyListener,
    "kube2proxy": config.Kube2proxy,
}


def _wrong_values(default: Any, name: str) -> list[tuple[str, str]]:
    """(YAML value, what the complaint must say) for values of the wrong type for `default`."""
    if isinstance(default, bool):
        return [
            ("1", "must be true or false, not an integer"),
            ("'true'", "must be true or false, not a string"),
        ]
    if isinstance(default, int):
        return [("'1'", "must be an integer, not a string"), ("true", "must be an integer, not true/false")]
    if isinstance(default, float):
        return [("'1.5'", "must be a number, not a string"), ("true", "must be a number, not true/false")]
    if isinstance(default, tuple):
        return [("token", "must be a list, not a string"), ("{a: 1}", "must be a list, not a mapping")]
    wrong = [("true", "must be a string, not true/false"), ("[a]", "must be a string, not a list")]
    return wrong if name in NGINX_NUMBERS else [*wrong, ("1", "must be a string, not an integer")]


CASES = [
    pytest.param(section, field.name, value, said, id=f"{section}.{field.name}={value}")
    for section, cls in SECTIONS.items()
    for field in dataclasses.fields(cls)
    for value, said in _wrong_values(getattr(cls(), field.name), field.name)
]


@pytest.mark.parametrize(("section", "name", "value", "said"), CASES)
def test_a_value_of_another_type_is_refused_naming_both_types(
    section: str, name: str, value: str, said: str
) -> None:
    text = BASE + f"{section}:\n  {name}: {value}\n"
    with pytest.raises(ConfigError) as raised:
        config.parse(text, "fleet.yaml")
    assert str(raised.value).startswith(f"fleet.yaml:3: {section}.{name}")
    assert said in str(raised.value)


def test_a_whole_number_is_a_number_for_a_seconds_setting() -> None:
    settings = config.parse(BASE + "kube2proxy: {resync_interval: 300}\n", "fleet.yaml").kube2proxy
    assert settings.resync_interval == 300.0
