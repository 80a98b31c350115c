"""An existing cluster reached through a kubeconfig context: no cloud resources at all."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ExistingClusterArgs:
    #: The kubeconfig context to deploy to.
    context: str
    #: Path of the kubeconfig file (`~` expanded); None: the KUBECONFIG default chain.
    kubeconfig: Optional[str] = None


class ExistingCluster(pulumi.ComponentResource):
    """The stack's Kubernetes provider for a cluster someone else runs (kind, k3d, minikube, ...)."""

    provider: k8s.Provider
    name: pulumi.Output[str]

    def __init__(self, name: str, args: ExistingClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        if not args.context:
            raise ValueError("ExistingClusterArgs.context must name a kubeconfig context")
        super().__init__("scaleplane:cluster:ExistingCluster", name, None, opts)
        kubeconfig = os.path.expanduser(args.kubeconfig) if args.kubeconfig else None
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=kubeconfig,
            context=args.context,
            # The context names the cluster: another kubeconfig file (or a rotated credential)
            # for the same context is an update of the provider, not a new cluster.
            cluster_identifier=f"context:{args.context}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = pulumi.Output.from_input(args.context)
        #: Whatever serves LoadBalancer Services on this cluster is already there.
        self.load_balancer_ready: list[pulumi.Resource] = []
        self.register_outputs({"name": self.name})
