"""A Kubernetes webservice's size: quantities read as the API reads them, and refused with a reason."""

from __future__ import annotations

from fractions import Fraction

import pytest

from toolforgectl.core import config, kubesize
from toolforgectl.core.errors import ConfigError, ValidationError
from toolforgectl.core.kubesize import Size

MAXIMA = Size(4, "1", "4Gi")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        (".25", Fraction(1, 4)),
        ("1", 1),
        ("512Mi", 512 * 2**20),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1.5Gi", 3 * 2**29),
        ("128974848", 128974848),
        ("129e6", 129 * 10**6),
        ("100k", 100_000),
    ],
)
def test_quantities_are_read_exactly_as_kubernetes_reads_them(text: str, value: Fraction) -> None:
    assert kubesize.quantity("memory", text) == value


@pytest.mark.parametrize("text", ["", "-1", "1 Gi", "1gi", "1GB", "one", "0x10", "1e", "1.2.3", "+1"])
def test_what_is_not_a_quantity_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        kubesize.quantity("memory", text)

    assert str(raised.value) == f"memory {text!r} is not a Kubernetes quantity (such as 512Mi or 1Gi)"


def test_the_limits_are_as_asked_and_the_requests_half_of_them() -> None:
    assert Size(2, "1", "1Gi").resources() == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }
    # Halves that no binary unit holds stay exact (bytes), and cpu rounds up to a whole millicore.
    assert Size(1, "1m", "1G").resources()["requests"] == {"cpu": "1m", "memory": "500000000"}


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (Size(0, "500m", "512Mi"), "replicas must be between 1 and 4, not 0"),
        (Size(5, "500m", "512Mi"), "replicas must be between 1 and 4, not 5"),
        (Size(1, "2", "512Mi"), "cpu '2' is more than the 1 a webservice may have"),
        (Size(1, "1001m", "512Mi"), "cpu '1001m' is more than the 1 a webservice may have"),
        (Size(1, "0", "512Mi"), "cpu '0' is less than 1m, the least Kubernetes gives"),
        (Size(1, "500m", "8Gi"), "memory '8Gi' is more than the 4Gi a webservice may have"),
        (Size(1, "500m", "512"), "memory '512' is 512 bytes: give a unit, such as 512Mi"),
        (Size(1, "half", "512Mi"), "cpu 'half' is not a Kubernetes quantity (such as 500m, 0.5 or 1)"),
    ],
)
def test_a_size_beyond_the_maxima_or_below_sense_is_refused(asked: Size, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        kubesize.checked(asked, MAXIMA)

    assert str(raised.value) == message


def test_the_maxima_themselves_are_allowed() -> None:
    assert kubesize.checked(MAXIMA, MAXIMA) == MAXIMA


def test_the_configured_defaults_and_maxima_must_be_quantities() -> None:
    base = "proxies: [{name: proxy-01}]\n"
    settings = config.parse(
        base + "webservice: {kube_cpu: 250m, kube_max_memory: 8Gi}\n", "t.yaml"
    ).webservice
    assert (settings.kube_cpu, settings.kube_memory, settings.kube_max_memory) == ("250m", "512Mi", "8Gi")

    with pytest.raises(ConfigError) as raised:
        config.parse(base + "webservice: {kube_max_memory: 8 GB}\n", "t.yaml")

    assert "webservice.kube_max_memory must be a Kubernetes quantity such as 512Mi or 1Gi" in str(
        raised.value
    )
