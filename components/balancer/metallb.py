"""MetalLB: LoadBalancer addresses on clusters without a cloud balancer (kind, k3d, bare metal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.chart_workloads import (
    ChartContainer,
    ChartRelease,
    ChartWorkload,
    declares,
    fullname,
    given,
    http_probe,
)
from components.kube import MANAGED_BY, PodSecurityLevel, child_opts, namespace
from components.webhook import AdmissionProbe, WebhookReady, WebhookReadyArgs
from settings.traffic import address_bounds

CHART_REPOSITORY = "https://metallb.github.io/metallb"

#: The speaker runs with hostNetwork and NET_RAW to answer ARP/NDP for the service addresses:
#: the namespace must admit privileged pods, whatever the cluster's default Pod Security level.
SPEAKER_POD_SECURITY: PodSecurityLevel = "privileged"


@dataclass(frozen=True)
class MetalLBArgs:
    #: Address ranges (CIDRs or "first-last"); validated again here for callers outside settings.
    addresses: Sequence[str]
    #: metallb chart version (0.16.1 is the pinned reference).
    chart_version: str = "0.16.1"
    namespace: str = "metallb-system"
    #: Name of the IPAddressPool and its L2Advertisement.
    pool_name: str = "default"
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    #: None: MetalLB serves every LoadBalancer Service without a class.
    load_balancer_class: Optional[str] = None
    #: The API server's port as the controller's egress policy sees it (after the `kubernetes`
    #: Service's translation): 6443 on kind and kubeadm clusters.
    api_server_port: int = 6443


#: The chart's probe defaults (values.yaml controller/speaker livenessProbe and readinessProbe;
#: tests compare them with the pinned chart): both enabled, on the health port 17472.
CHART_PROBE_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "port": 17472,
    "failureThreshold": 3,
    "initialDelaySeconds": 10,
    "periodSeconds": 10,
    "successThreshold": 1,
    "timeoutSeconds": 1,
}
#: What templates/controller.yaml and speaker.yaml probe: /healthz (liveness) and /readyz.
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}


@declares("metallb")
def chart_workloads(release: ChartRelease) -> list[ChartWorkload]:
    """What the metallb chart runs with the values `chart_values` gives it (layer 2 only)."""
    values = release.values
    if given(values, "speaker", "frr", "enabled") is not False:
        raise ValueError("the metallb declaration covers layer 2 only (speaker.frr.enabled: false)")

    def container(component: str) -> ChartContainer:
        probes: dict[str, Any] = {}
        for field in PROBE_PATHS:
            settings = {**CHART_PROBE_DEFAULTS, **(given(values, component, field) or {})}
            if settings["enabled"]:
                timing = {k: v for k, v in settings.items() if k not in ("enabled", "port")}
                probes[field] = http_probe(PROBE_PATHS[field], settings["port"], **timing)
        return ChartContainer(
            component,
            resources=given(values, component, "resources") or None,
            liveness_probe=probes.get("livenessProbe"),
            readiness_probe=probes.get("readinessProbe"),
        )

    # FRR is off: the speaker runs no FRR containers or init containers.
    name = fullname(release, "metallb")
    return [
        ChartWorkload("Deployment", f"{name}-controller", [container("controller")]),
        ChartWorkload("DaemonSet", f"{name}-speaker", [container("speaker")]),
    ]


class MetalLB(pulumi.ComponentResource):
    """MetalLB in layer-2 mode: the chart, one address pool and its L2 advertisement.

    Exposed Services must depend on `ready` (the pool and advertisement): MetalLB only assigns
    addresses from pools that exist, and the pools can only be created once the chart's CRDs
    are installed and its admission webhook answers (`webhook_ready`).
    """

    ready: list[pulumi.Resource]
    load_balancer_class: Optional[str]
    pool_name: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: MetalLBArgs,
        provider: pulumi.ProviderResource,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        if not args.addresses:
            raise ValueError("MetalLBArgs.addresses must list at least one address range")
        if not 1 <= args.api_server_port <= 65535:
            raise ValueError(f"MetalLBArgs.api_server_port must be within 1..65535, not {args.api_server_port}")
        for text in args.addresses:
            try:
                address_bounds(text)
            except ValueError as error:
                raise ValueError(f"MetalLBArgs.addresses: {error}") from None
        super().__init__("scaleplane:balancer:MetalLB", name, None, opts)

        ns = namespace(f"{name}-namespace", args.namespace, self, provider, pod_security=SPEAKER_POD_SECURITY)

        # helm.v3.Release, not v4.Chart: MetalLB's controller rewrites objects the chart ships (it
        # fills the webhook certificate Secret and patches caBundle into the CRDs' conversion
        # webhook and the ValidatingWebhookConfiguration). Inside a Helm release those runtime
        # edits are not drift Pulumi would fight on every refresh. The CRDs come from the chart's
        # templated `crds` subchart, so they are upgraded and removed with the release, and the
        # Release waits (Helm --wait semantics) until the controller serves its webhook.
        self.chart = k8s.helm.v3.Release(
            f"{name}-chart",
            name="metallb",
            chart="metallb",
            version=args.chart_version,
            repository_opts={"repo": CHART_REPOSITORY},
            namespace=ns.metadata["name"],
            values=self.chart_values(args),
            max_history=10,
            cleanup_on_fail=True,
            opts=child_opts(self, provider),
        )

        # The chart's wait is no webhook signal: in v0.16.1 the controller's readiness is a plain
        # ping (internal/k8s/k8s.go: AddReadyzCheck("readyz", healthz.Ping)) and its webhooks are
        # registered only after certificate rotation has patched the caBundle. The webhook fails
        # closed (crds.validationFailurePolicy: Fail) and pulumi-kubernetes does not retry a
        # refused create, so the custom resources wait for a Job that dry-runs an L2Advertisement
        # until the webhook admits it. The probe is an L2Advertisement, not a pool: a probe pool
        # would overlap the real one once it exists (a later run, after a chart upgrade) and be
        # refused for that. Both webhooks are served by the same controller, registered together.
        self.webhook_ready = WebhookReady(
            f"{name}-webhook-ready",
            WebhookReadyArgs(
                webhook="MetalLB's validating webhook",
                namespace=args.namespace,
                job_name="metallb-webhook-ready",
                probes=[self.webhook_probe(args)],
                revision=args.chart_version,
            ),
            provider,
            after=[self.chart],
            opts=pulumi.ResourceOptions(parent=self),
        )
        waits = [self.chart, *self.webhook_ready.ready]

        pool = k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version="metallb.io/v1beta1",
            kind="IPAddressPool",
            metadata={"name": args.pool_name, "namespace": ns.metadata["name"], "labels": dict(MANAGED_BY)},
            spec=self.pool_spec(args),
            opts=child_opts(self, provider, depends_on=waits),
        )
        advertisement = k8s.apiextensions.CustomResource(
            f"{name}-l2-advertisement",
            api_version="metallb.io/v1beta1",
            kind="L2Advertisement",
            metadata={"name": args.pool_name, "namespace": ns.metadata["name"], "labels": dict(MANAGED_BY)},
            spec={"ipAddressPools": [args.pool_name]},
            opts=child_opts(self, provider, depends_on=[*waits, pool]),
        )

        self.ready = [pool, advertisement]
        self.load_balancer_class = args.load_balancer_class
        self.pool_name = pulumi.Output.from_input(args.pool_name)
        self.namespace = ns.metadata["name"]
        self.register_outputs({"pool_name": self.pool_name, "namespace": self.namespace})

    @staticmethod
    def chart_values(args: MetalLBArgs) -> dict[str, Any]:
        """Values for the metallb chart: layer 2 only, with CPU requests so policy admits the pods."""
        values: dict[str, Any] = {
            # Layer 2 needs neither FRR nor frr-k8s (both only serve BGP): fewer privileged pods.
            "frrk8s": {"enabled": False},
            "speaker": {
                "frr": {"enabled": False},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            },
            "controller": {
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            },
            # The chart's own policies: default deny (ingress and egress) in the namespace, then the
            # controller may reach the API server and accept its webhook and metrics ports. The
            # speaker runs on the host network, where NetworkPolicy does not apply; the webhook
            # wait's Job brings its own policy.
            "networkpolicies": {"enabled": True, "defaultDeny": True, "apiPort": args.api_server_port},
        }
        if args.load_balancer_class:
            values["loadBalancerClass"] = args.load_balancer_class
        return values

    @staticmethod
    def webhook_probe(args: MetalLBArgs) -> AdmissionProbe:
        """An L2Advertisement for every pool: what the webhook admits whatever pools exist."""
        return AdmissionProbe(
            api_version="metallb.io/v1beta1",
            kind="L2Advertisement",
            resource="l2advertisements",
            # MetalLB's webhook refuses its objects outside the release's namespace.
            namespace=args.namespace,
            body={"spec": {}},
        )

    @staticmethod
    def pool_spec(args: MetalLBArgs) -> dict[str, Any]:
        return {
            "addresses": list(args.addresses),
            "autoAssign": args.auto_assign,
            "avoidBuggyIPs": args.avoid_buggy_ips,
        }
