"""emojivoto: Linkerd's demo application (gRPC + HTTP voting), meshed, its web front exposed (recipe 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.balancer import Balancer
from components.kube import PodSecurityLevel, app_labels, child_opts, namespace, restricted_security_context
from components.mesh.flows import Flow
from components.network import Peer, allow_ingress, deny_ingress

IMAGE_REPOSITORY = "docker.l5d.io/buoyantio"
GRPC_PORT = 8080
PROM_PORT = 8801
WEB_PORT = 8080


def _labels(app: str) -> dict[str, str]:
    return app_labels(app, **{"app.kubernetes.io/part-of": "emojivoto"})


@dataclass(frozen=True)
class EmojivotoArgs:
    namespace: str = "emojivoto"
    #: Tag of the docker.l5d.io/buoyantio/emojivoto-* images (v11 as Linkerd's getting-started uses).
    version: str = "v11"
    #: The mesh's namespace labels and annotations (Linkerd: linkerd.io/inject: enabled).
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    #: Pods are created after these (the mesh's proxy injector), so they start meshed.
    depends_on: Sequence[pulumi.Resource] = ()
    #: The namespace's Pod Security level: every emojivoto pod meets restricted (non-root, no
    #: capabilities, seccomp RuntimeDefault at the pod level); a mesh may ask for a laxer one.
    pod_security: PodSecurityLevel = "restricted"


class Emojivoto(pulumi.ComponentResource):
    """The emoji, voting and web services plus the vote-bot load generator.

    Same shape as Linkerd's emojivoto.yml (Deployments emoji, voting, web, vote-bot; Services
    emoji-svc, voting-svc, web-svc), with CPU requests and probes added so the policy pack
    admits it; web-svc is a LoadBalancer from the stack's balancer and `url` is its address.
    No pod calls the Kubernetes API, so none mounts a service-account token. `flows` says who
    calls what (the mesh enforces it): web from outside the mesh and from vote-bot, emoji and
    voting from web.
    """

    url: pulumi.Output[Optional[str]]
    flows: list[Flow]
    namespace: k8s.core.v1.Namespace

    def __init__(
        self,
        name: str,
        args: EmojivotoArgs,
        provider: pulumi.ProviderResource,
        balancer: Balancer,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        if not args.version:
            raise ValueError("EmojivotoArgs.version must name an image tag")
        super().__init__("scaleplane:mesh:Emojivoto", name, None, opts)
        self._name = name
        self._provider = provider
        ns = namespace(
            f"{name}-namespace",
            args.namespace,
            self,
            provider,
            pod_security=args.pod_security,
            labels=args.namespace_labels,
            annotations=args.namespace_annotations,
        )
        self.namespace = ns
        after = [ns, *args.depends_on]
        ns_name = args.namespace
        image = f"{IMAGE_REPOSITORY}/emojivoto-{{}}:{args.version}"

        grpc_probe = {"tcpSocket": {"port": GRPC_PORT}, "periodSeconds": 10}
        for app, service, image_name in (("emoji", "emoji-svc", "emoji-svc"), ("voting", "voting-svc", "voting-svc")):
            self._deployment(
                app,
                ns_name,
                selector={"app": service, "version": args.version},
                container={
                    "name": service,
                    "image": image.format(image_name),
                    "env": [
                        {"name": "GRPC_PORT", "value": str(GRPC_PORT)},
                        {"name": "PROM_PORT", "value": str(PROM_PORT)},
                    ],
                    "ports": [
                        {"name": "grpc", "containerPort": GRPC_PORT},
                        {"name": "prom", "containerPort": PROM_PORT},
                    ],
                    "livenessProbe": grpc_probe,
                    "readinessProbe": grpc_probe,
                    "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                },
                depends_on=after,
            )
            k8s.core.v1.Service(
                f"{name}-{service}",
                metadata={"name": service, "namespace": ns_name, "labels": _labels(service)},
                spec={
                    "selector": {"app": service},
                    "ports": [
                        {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                        {"name": "prom", "port": PROM_PORT, "targetPort": PROM_PORT},
                    ],
                },
                opts=child_opts(self, provider, depends_on=[ns]),
            )

        http_probe = {"httpGet": {"path": "/", "port": WEB_PORT}, "periodSeconds": 10}
        self._deployment(
            "web",
            ns_name,
            selector={"app": "web-svc", "version": args.version},
            container={
                "name": "web-svc",
                "image": image.format("web"),
                "env": [
                    {"name": "WEB_PORT", "value": str(WEB_PORT)},
                    {"name": "EMOJISVC_HOST", "value": f"emoji-svc.{ns_name}:{GRPC_PORT}"},
                    {"name": "VOTINGSVC_HOST", "value": f"voting-svc.{ns_name}:{GRPC_PORT}"},
                    {"name": "INDEX_BUNDLE", "value": "dist/index_bundle.js"},
                ],
                "ports": [{"name": "http", "containerPort": WEB_PORT}],
                "livenessProbe": http_probe,
                "readinessProbe": http_probe,
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            },
            depends_on=after,
        )
        exposed = balancer.expose(
            "web-svc",
            namespace=ns_name,
            selector={"app": "web-svc"},
            port=80,
            target_port=WEB_PORT,
            labels=_labels("web-svc"),
            resource_name=f"{name}-web-svc",
            parent=self,
            provider=provider,
            depends_on=[ns],
        )
        self._deployment(
            "vote-bot",
            ns_name,
            selector={"app": "vote-bot", "version": args.version},
            container={
                "name": "vote-bot",
                "image": image.format("web"),
                "command": ["emojivoto-vote-bot"],
                "env": [{"name": "WEB_HOST", "value": f"web-svc.{ns_name}:80"}],
                # The bot serves nothing: alive while its process runs, ready once web answers.
                "livenessProbe": {"exec": {"command": ["/bin/sh", "-c", "kill -0 1"]}, "periodSeconds": 30},
                "readinessProbe": {
                    "exec": {"command": ["curl", "-fsS", "-o", "/dev/null", f"http://web-svc.{ns_name}:80/"]},
                    "periodSeconds": 30,
                },
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            },
            depends_on=after,
        )
        self.web_service = exposed.service
        self.url = exposed.url
        # Every client is in this namespace (vote-bot -> web -> emoji, voting); web is also the
        # balancer's target, whose clients are outside the mesh.
        # The same flows for the network: web from any source (the balancer), emoji and voting
        # only from web's pods; nothing else reaches emojivoto's pods (the mesh adds its own).
        deny_ingress(f"{name}-deny-ingress", ns_name, self, provider, depends_on=[ns])
        allow_ingress(
            f"{name}-web-ingress",
            ns_name,
            policy_name="web-svc",
            pods={"app": "web-svc"},
            sources=[Peer.anywhere()],
            ports=[WEB_PORT],
            parent=self,
            provider=provider,
            depends_on=[ns],
        )
        for service in ("emoji-svc", "voting-svc"):
            allow_ingress(
                f"{name}-{service}-ingress",
                ns_name,
                policy_name=service,
                pods={"app": service},
                sources=[Peer.pods({"app": "web-svc"})],
                ports=[GRPC_PORT],
                parent=self,
                provider=provider,
                depends_on=[ns],
            )
        self.flows = [
            Flow("web-svc", ns_name, {"app": "web-svc"}, WEB_PORT, clients=[ns_name], from_outside=True),
            Flow("emoji-svc", ns_name, {"app": "emoji-svc"}, GRPC_PORT, clients=[ns_name], protocol="gRPC"),
            Flow("voting-svc", ns_name, {"app": "voting-svc"}, GRPC_PORT, clients=[ns_name], protocol="gRPC"),
        ]
        self.register_outputs({"url": self.url})

    def _deployment(
        self,
        app: str,
        ns_name: str,
        *,
        selector: dict[str, str],
        container: dict[str, Any],
        depends_on: Sequence[pulumi.Resource],
    ) -> k8s.apps.v1.Deployment:
        account = k8s.core.v1.ServiceAccount(
            f"{self._name}-{app}-account",
            metadata={"name": app, "namespace": ns_name},
            # A mesh identity only: the proxies use their own projected tokens.
            automount_service_account_token=False,
            opts=child_opts(self, self._provider, depends_on=depends_on),
        )
        return k8s.apps.v1.Deployment(
            f"{self._name}-{app}",
            metadata={"name": app, "namespace": ns_name, "labels": _labels(app)},
            spec={
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": {**_labels(app), **selector}},
                    # The Go services need no privileges and listen above 1024: run them restricted.
                    "spec": {
                        "serviceAccountName": app,
                        "automountServiceAccountToken": False,
                        # Pod-level too, so containers the mesh injects run under it.
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{**container, "securityContext": restricted_security_context()}],
                    },
                },
            },
            opts=child_opts(self, self._provider, depends_on=[*depends_on, account]),
        )
