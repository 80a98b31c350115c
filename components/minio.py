"""Self-healing MinIO: a StatefulSet whose deleted pods come back with their data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.autoscaling import pod_disruption_budget
from components.kube import (
    PodSecurityLevel,
    app_labels,
    child_opts,
    priority_class,
    resources,
    restricted_security_context,
)
from components.kube import namespace as kube_namespace
from components.network import (
    NO_PROXY,
    Peer,
    ProxyTraffic,
    allow_ingress,
    allow_proxy_ingress,
    deny_ingress,
    limit_egress,
)
from components.placement import pod_spec_fields
from settings.workloads import MinioSettings

APP = "minio"  # recipe 3's minio-service selects app=minio
API_PORT = 9000
CONSOLE_PORT = 9001
HEADLESS = "minio-headless"
CREDENTIALS = "minio-credentials"
MINIO_UID = 1000


@dataclass(frozen=True)
class MinioArgs:
    settings: MinioSettings
    environment: str
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    #: The namespace's Pod Security level: restricted, unless an injected mesh proxy needs less
    #: (the mesh's app_pod_security).
    pod_security: PodSecurityLevel = "restricted"
    #: What an injected mesh proxy needs from the namespace's NetworkPolicies.
    proxy: ProxyTraffic = NO_PROXY


def server_args(replicas: int, namespace: str) -> list[str]:
    """`minio server` arguments: one local drive, or every pod's drive for distributed mode."""
    if replicas == 1:
        volumes = "/data"
    else:
        # MinIO's own ellipsis syntax expands to minio-0 ... minio-(N-1).
        volumes = f"http://{APP}-{{0...{replicas - 1}}}.{HEADLESS}.{namespace}.svc.cluster.local/data"
    return ["server", volumes, "--console-address", f":{CONSOLE_PORT}", "--certs-dir", "/tmp/certs"]


def health_probe(path: str, **timing: int) -> dict[str, Any]:
    # MinIO's health endpoints need no credentials, so probes carry none.
    return {"httpGet": {"path": path, "port": API_PORT, "scheme": "HTTP"}, **timing}


class Minio(pulumi.ComponentResource):
    """MinIO object storage as a StatefulSet with per-pod volumes and generated root credentials.

    Liveness follows the playbook (GET /minio/health/live on 9000, 120 s initial delay, every
    20 s); readiness uses /minio/health/ready and a startup probe covers slow first starts. The
    Kubernetes controller recreates any deleted pod (minio-0..N-1) with the same volume.
    """

    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    credentials_secret: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: MinioArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        minio = args.settings
        if 1 < minio.replicas < 4:
            raise ValueError(f"MinioArgs.settings.replicas must be 1 or at least 4, got {minio.replicas}")
        super().__init__("scaleplane:workloads:Minio", name, None, opts)
        labels = app_labels(APP, "object-storage", environment=args.environment)
        selector = {"app": APP}

        ns = kube_namespace(
            f"{name}-namespace",
            minio.namespace,
            self,
            provider,
            pod_security=args.pod_security,
            labels={**app_labels(APP, "namespace", environment=args.environment), **args.namespace_labels},
            annotations=args.namespace_annotations,
            holds_volumes=True,
        )
        namespace = ns.metadata.name

        root_user = random.RandomPassword(
            f"{name}-root-user", length=20, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        root_password = random.RandomPassword(
            f"{name}-root-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": CREDENTIALS, "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={"MINIO_ROOT_USER": root_user.result, "MINIO_ROOT_PASSWORD": root_password.result},
            # Kept with the retained volumes: their data is administered with these credentials.
            opts=child_opts(self, provider, retain_on_delete=True),
        )

        ports = [
            {"name": "api", "port": API_PORT, "targetPort": "api", "protocol": "TCP"},
            {"name": "console", "port": CONSOLE_PORT, "targetPort": "console", "protocol": "TCP"},
        ]
        k8s.core.v1.Service(
            f"{name}-headless",
            metadata={"name": HEADLESS, "namespace": namespace, "labels": labels},
            spec={
                "clusterIP": "None",
                # Distributed MinIO finds its peers by DNS before any of them is ready.
                "publishNotReadyAddresses": True,
                "selector": selector,
                "ports": ports,
            },
            opts=child_opts(self, provider),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": APP, "namespace": namespace, "labels": labels},
            spec={"type": "ClusterIP", "selector": selector, "ports": ports[:1]},
            opts=child_opts(self, provider),
        )

        priority = priority_class(f"{name}-priority", minio.placement, APP, self, provider)
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": minio.storage_size}},
        }
        if minio.storage_class:
            claim_spec["storageClassName"] = minio.storage_class
        pod_spec: dict[str, Any] = {
            # MinIO never calls the Kubernetes API. The image sets no USER (it would start as
            # root): the pod runs it as uid/gid 1000, and fsGroup gives that group the volumes.
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": MINIO_UID,
                "runAsGroup": MINIO_UID,
                "fsGroup": MINIO_UID,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "minio",
                    "image": minio.image,
                    "args": server_args(minio.replicas, minio.namespace),
                    "envFrom": [{"secretRef": {"name": CREDENTIALS}}],
                    "ports": [
                        {"name": "api", "containerPort": API_PORT},
                        {"name": "console", "containerPort": CONSOLE_PORT},
                    ],
                    "resources": resources(minio.resources),
                    "startupProbe": health_probe(
                        "/minio/health/live", periodSeconds=10, timeoutSeconds=1, failureThreshold=30
                    ),
                    "livenessProbe": health_probe(
                        "/minio/health/live",
                        initialDelaySeconds=120,
                        periodSeconds=20,
                        timeoutSeconds=1,
                        failureThreshold=3,
                    ),
                    "readinessProbe": health_probe(
                        "/minio/health/ready",
                        initialDelaySeconds=5,
                        periodSeconds=10,
                        timeoutSeconds=1,
                        failureThreshold=3,
                    ),
                    "securityContext": restricted_security_context(MINIO_UID, read_only_root=True),
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            **pod_spec_fields(minio.placement),
        }
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={"name": APP, "namespace": namespace, "labels": labels},
            spec={
                "serviceName": HEADLESS,
                "replicas": minio.replicas,
                # All pods start together: distributed MinIO waits for its peers.
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels}, "spec": claim_spec}],
            },
            opts=child_opts(self, provider, depends_on=[credentials, *priority]),
        )
        # --- NetworkPolicies -----------------------------------------------------------------
        deny_ingress(f"{name}-deny-ingress", namespace, self, provider)
        allow_ingress(
            f"{name}-api-ingress",
            namespace,
            policy_name="minio-api-from-clients",
            pods=selector,
            # S3 clients through minio-service's balancer (filtered there by its source ranges:
            # the pod sees a node's or the NLB's address, not the client's) or a mesh gateway.
            sources=[Peer.anywhere()],
            ports=[API_PORT],
            parent=self,
            provider=provider,
        )
        peers: tuple[tuple[Peer, tuple[int | str, ...]], ...] = ()
        if minio.replicas > 1:
            # Distributed mode: every server talks to every other on the API port.
            peers = ((Peer.pods(selector), (API_PORT,)),)
            allow_ingress(
                f"{name}-peer-ingress",
                namespace,
                policy_name="minio-from-peers",
                pods=selector,
                sources=[Peer.pods(selector)],
                ports=[API_PORT],
                parent=self,
                provider=provider,
            )
        limit_egress(
            f"{name}-egress",
            namespace,
            policy_name="minio-egress",
            pods=selector,
            destinations=(*peers, *args.proxy.egress),
            parent=self,
            provider=provider,
        )
        allow_proxy_ingress(f"{name}-mesh-proxy", namespace, args.proxy, parent=self, provider=provider)

        if minio.replicas > 1:
            pod_disruption_budget(f"{name}-pdb", APP, namespace, selector, self, provider, depends_on=[statefulset])

        self.namespace = namespace
        self.service_name = service.metadata.name
        self.credentials_secret = credentials.metadata.name
        self.register_outputs(
            {
                "namespace": self.namespace,
                "serviceName": self.service_name,
                "credentialsSecret": self.credentials_secret,
            }
        )
