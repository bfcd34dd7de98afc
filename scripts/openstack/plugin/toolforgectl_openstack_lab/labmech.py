"""An ML2 mechanism driver that binds every port, for a Neutron without agents.

No L2 agent runs in the test cloud, so no real driver would bind a port and Nova would never see
its servers' ports bound. Neutron's own `test` driver asserts test-only invariants that fail Nova's
bind-on-update; this one binds the first segment it is offered, as OVS, and nothing else.
"""

from __future__ import annotations

from typing import Any

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class LabMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    """Binds any port to its first segment (`mechanism_drivers = lab` in [ml2])."""

    def initialize(self) -> None:
        """Nothing to set up: there is no agent to talk to."""

    def bind_port(self, context: Any) -> None:
        """Bind to the first segment offered; a port without segments stays unbound."""
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID], portbindings.VIF_TYPE_OVS, {portbindings.CAP_PORT_FILTER: False}
            )
            return
