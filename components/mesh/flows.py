"""Who may talk to what: the traffic flows a stack needs, as values any mesh can enforce.

A `Flow` names one port of one workload and the clients allowed to open connections to it.
Each mesh turns a flow into its own authorization objects (Istio: AuthorizationPolicy and,
for clients outside the mesh, a port-level PeerAuthentication; Linkerd: Server,
AuthorizationPolicy, MeshTLSAuthentication / NetworkAuthentication), so the same list of flows
secures a stack whichever mesh it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

#: Linkerd's protocol hint for a Server (Istio detects protocols by port name on its own).
Protocol = Literal["unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque"]
#: The whole IPv4 and IPv6 address space, for clients that are outside the mesh.
EVERY_NETWORK = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Flow:
    """One port of one workload and who may open connections to it.

    `clients`: namespaces whose meshed workloads may connect; the mesh checks their mTLS
    identity. `from_ingress`: the mesh's ingress (Istio's gateway, or Traefik in front of
    Linkerd) may connect. `from_outside`: clients outside the mesh reach the port directly
    (a LoadBalancer Service selects these pods); they cannot present a mesh identity, so the
    port accepts them in plain text from any source, and NetworkPolicy plus the balancer's
    source ranges are what narrow it.
    """

    #: Names the authorization objects (a DNS label, unique within the namespace).
    name: str
    namespace: str
    #: Labels of the pods that serve the port.
    selector: Mapping[str, str]
    #: The container port (what the pods listen on, not a Service port).
    port: int
    clients: Sequence[str] = ()
    from_ingress: bool = False
    from_outside: bool = False
    protocol: Protocol = "unknown"
    #: Where the port's pods come from, for messages.
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.selector:
            raise ValueError(f"Flow {self.name!r}: selector must not be empty (it would select every pod)")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"Flow {self.name!r}: port must be within 1..65535, not {self.port}")
        if not (self.clients or self.from_ingress or self.from_outside):
            raise ValueError(f"Flow {self.name!r}: names no client (clients, from_ingress or from_outside)")
        object.__setattr__(self, "clients", tuple(self.clients))
