"""A Kubernetes webservice's size: its replicas, and the cpu and memory of each, checked.

`webservice --backend kubernetes --replicas 2 --cpu 500m --mem 1Gi start` asks for a size; the
values are Kubernetes quantities (`500m`, `0.5`, `1`; `512Mi`, `1Gi`, `1G`), parsed exactly here
(as fractions, never floats) so that they can be checked before anything reaches the API: a value
that is not a quantity, zero, or more than the operator allows (`kube_max_*`) is refused with a
sentence saying what would do. The container's limit is the value asked for; its request (what the
scheduler reserves on a node) is half of it, so a tool can burst to its limit while the cluster
packs webservices by their usual needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from toolforgectl.core.errors import ValidationError
from toolforgectl.core.validate import shown

# Kubernetes' suffixes (resource.Quantity): decimal SI, binary SI, and decimal exponents (`1e3`).
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[eE][+-]?[0-9]{1,3}|[numkMGTPE]?)"
)
MILLI = Fraction(1, 1000)  # the finest cpu Kubernetes keeps; less is rounded up by the API
MEBI = 2**20  # less memory than this is a missing unit (`--mem 512`), not a web server's need
EXAMPLES = {"cpu": "500m, 0.5 or 1", "memory": "512Mi or 1Gi"}


def quantity(what: str, text: str) -> Fraction:
    """The exact value of Kubernetes quantity `text` (a bare number of cores or bytes, or with a
    suffix); ValidationError naming `what` when it is not one (a sign, a space, an unknown unit)."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        example = EXAMPLES.get(what, "500m or 1Gi")
        raise ValidationError(f"{what} {shown(text)} is not a Kubernetes quantity (such as {example})")
    number, suffix = Fraction(found["number"]), str(found["suffix"])
    if suffix in _BINARY:
        return number * Fraction(2 ** _BINARY[suffix])
    exponent = int(suffix[1:]) if suffix[:1] in ("e", "E") else _DECIMAL[suffix]
    return number * Fraction(10) ** exponent


@dataclass(frozen=True)
class Size:
    """Replicas, and each replica's cpu and memory limit as Kubernetes quantities."""

    replicas: int
    cpu: str
    memory: str

    def resources(self) -> dict[str, dict[str, str]]:
        """The container's `resources`: the limits as given, the requests half of them."""
        cpu, memory = quantity("cpu", self.cpu), quantity("memory", self.memory)
        return {
            "limits": {"cpu": self.cpu, "memory": self.memory},
            "requests": {"cpu": cpu_text(cpu / 2), "memory": memory_text(memory / 2)},
        }


def checked(asked: Size, maxima: Size) -> Size:
    """`asked` if each value is a positive quantity no bigger than `maxima`'s; ValidationError
    with a sentence for the tool maintainer otherwise."""
    if isinstance(asked.replicas, bool) or not 1 <= asked.replicas <= maxima.replicas:
        raise ValidationError(f"replicas must be between 1 and {maxima.replicas}, not {asked.replicas}")
    cpu, memory = quantity("cpu", asked.cpu), quantity("memory", asked.memory)
    if cpu < MILLI:
        raise ValidationError(f"cpu {shown(asked.cpu)} is less than 1m, the least Kubernetes gives")
    if memory < MEBI:
        raise ValidationError(
            f"memory {shown(asked.memory)} is {memory_text(memory)} bytes: give a unit, such as 512Mi"
        )
    for what, value, text, most in (
        ("cpu", cpu, asked.cpu, maxima.cpu),
        ("memory", memory, asked.memory, maxima.memory),
    ):
        if value > quantity(what, most):
            raise ValidationError(f"{what} {shown(text)} is more than the {most} a webservice may have")
    return asked


def cpu_text(cores: Fraction) -> str:
    """`cores` in millicores (`250m`), rounded up to a whole one as Kubernetes does."""
    return f"{math.ceil(cores / MILLI)}m"


def memory_text(size: Fraction) -> str:
    """`size` bytes in the largest binary unit that holds it exactly (`512Mi`), else in bytes."""
    whole = math.ceil(size)
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if whole >= 2**power and whole % 2**power == 0:
            return f"{whole // 2**power}{suffix}"
    return str(whole)
