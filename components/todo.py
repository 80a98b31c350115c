"""The playbook's to-do application: a web Deployment plus MongoDB, exposed by a LoadBalancer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.autoscaling import Autoscaler, AutoscalerArgs, pod_disruption_budget
from components.balancer import Balancer
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
from settings.workloads import TodoSettings

MONGODB_APP = "mongodb"  # todo-prod's pod affinity selects app=mongodb: keep this label stable
MONGODB_PORT = 27017
MONGODB_UID = 999  # the mongodb user of the official image
MONGODB_USER = "root"
DATABASE_NAME = "todo"
SERVICE_PORT = 80
WEB_CONTAINER = "web"


@dataclass(frozen=True)
class TodoAppArgs:
    settings: TodoSettings
    environment: str
    #: Labels/annotations for the app namespace (e.g. a mesh's injection switch).
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_annotations: Mapping[str, str] = field(default_factory=dict)
    #: The namespace's Pod Security level: restricted, unless an injected mesh proxy needs less
    #: (the mesh's app_pod_security).
    pod_security: PodSecurityLevel = "restricted"
    #: The stack's balancer, which exposes the web Service (its annotations, class and readiness).
    balancer: Balancer = field(default_factory=Balancer.cloud)
    #: The namespace's pods get a mesh proxy injected: the HPA then measures the web container alone.
    meshed: bool = False
    #: What the injected proxy needs from the namespace's NetworkPolicies (the mesh's proxy_traffic()).
    proxy: ProxyTraffic = NO_PROXY


def mongo_probe(period: int, timeout: int, initial_delay: int) -> dict[str, Any]:
    # `ping` needs no authentication, so the probe carries no credentials.
    return {
        "exec": {"command": ["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"]},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": 3,
    }


#: Where the official mongo image writes besides its data volume: its entrypoint's temporary
#: config and mongod's socket (/tmp), and the image's config-server volume.
MONGODB_WRITABLE_PATHS = ("/tmp", "/data/configdb")


def pod_security_context(uid: int) -> dict[str, Any]:
    """A pod securityContext for the restricted level: non-root uid/gid, volumes group-owned by it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volumes(prefix: str, paths: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """emptyDir volumes and their mounts for the paths a read-only-root container writes."""
    names = [f"{prefix}-{index}" for index in range(len(paths))]
    volumes = [{"name": name, "emptyDir": {}} for name in names]
    mounts = [{"name": name, "mountPath": path} for name, path in zip(names, paths, strict=True)]
    return volumes, mounts


class TodoApp(pulumi.ComponentResource):
    """The to-do web service and its MongoDB, with autoscaling, placement and a disruption budget.

    MongoDB is a one-pod StatefulSet with a persistent volume (kept when the StatefulSet is
    deleted or scaled) and a generated root password in a Secret; the web Deployment reads its
    connection from that Secret, runs where the placement says, never drops below its desired
    count during a rollout, and is exposed through a LoadBalancer Service.
    """

    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    url: pulumi.Output[Optional[str]]
    mongodb_uri: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: TodoAppArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        todo = args.settings
        scaling = todo.autoscaling
        if scaling.enabled and not scaling.min_replicas <= todo.replicas <= scaling.max_replicas:
            raise ValueError(
                f"TodoAppArgs.settings.replicas ({todo.replicas}) must lie within the autoscaling range "
                f"{scaling.min_replicas}..{scaling.max_replicas}"
            )
        super().__init__("scaleplane:workloads:TodoApp", name, None, opts)

        ns = kube_namespace(
            f"{name}-namespace",
            todo.namespace,
            self,
            provider,
            pod_security=args.pod_security,
            labels={**app_labels(todo.name, "namespace", environment=args.environment), **args.namespace_labels},
            annotations=args.namespace_annotations,
            holds_volumes=True,
        )
        namespace = ns.metadata.name

        priority = priority_class(f"{name}-priority", todo.placement, todo.name, self, provider)

        # --- MongoDB -------------------------------------------------------------------------
        password = random.RandomPassword(
            f"{name}-mongodb-password",
            length=32,
            special=False,  # the password goes into a connection URI unescaped
            opts=pulumi.ResourceOptions(parent=self),
        )
        mongodb_host = pulumi.Output.concat(MONGODB_APP, ".", namespace, ".svc.cluster.local")
        self.mongodb_uri = pulumi.Output.secret(
            pulumi.Output.format(
                "mongodb://{0}:{1}@{2}:{3}/{4}?authSource=admin",
                MONGODB_USER,
                password.result,
                mongodb_host,
                MONGODB_PORT,
                DATABASE_NAME,
            )
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-mongodb-credentials",
            metadata={
                "name": "mongodb-credentials",
                "namespace": namespace,
                "labels": app_labels(MONGODB_APP, "database"),
            },
            type="Opaque",
            string_data={
                "username": MONGODB_USER,
                "password": password.result,
                "uri": self.mongodb_uri,
            },
            # Kept with the retained volume: MongoDB sets its root password only on first start.
            opts=child_opts(self, provider, retain_on_delete=True),
        )
        mongo_labels = app_labels(MONGODB_APP, "database")
        mongo_selector = {"app": MONGODB_APP}
        k8s.core.v1.Service(
            f"{name}-mongodb-service",
            metadata={"name": MONGODB_APP, "namespace": namespace, "labels": mongo_labels},
            spec={
                "clusterIP": "None",  # headless: the StatefulSet's stable pod DNS
                "selector": mongo_selector,
                "ports": [{"name": "mongodb", "port": MONGODB_PORT, "targetPort": "mongodb", "protocol": "TCP"}],
            },
            opts=child_opts(self, provider),
        )
        mongo_scratch, mongo_scratch_mounts = scratch_volumes("scratch", MONGODB_WRITABLE_PATHS)
        mongo_pod_spec: dict[str, Any] = {
            # MongoDB never calls the Kubernetes API.
            "automountServiceAccountToken": False,
            # The image's mongodb user (uid/gid 999) owns the data; its entrypoint skips the
            # chown/gosu step when started as that user. OnRootMismatch skips the recursive
            # chown of every data file on each start once the volume root is right.
            "securityContext": pod_security_context(MONGODB_UID) | {"fsGroupChangePolicy": "OnRootMismatch"},
            "volumes": mongo_scratch,
            "containers": [
                {
                    "name": "mongodb",
                    "image": todo.mongodb.image,
                    "ports": [{"name": "mongodb", "containerPort": MONGODB_PORT}],
                    "env": [
                        {
                            "name": "MONGO_INITDB_ROOT_USERNAME",
                            "valueFrom": {"secretKeyRef": {"name": "mongodb-credentials", "key": "username"}},
                        },
                        {
                            "name": "MONGO_INITDB_ROOT_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "mongodb-credentials", "key": "password"}},
                        },
                    ],
                    "resources": resources(todo.mongodb.resources),
                    "startupProbe": mongo_probe(period=10, timeout=5, initial_delay=5) | {"failureThreshold": 30},
                    "livenessProbe": mongo_probe(period=20, timeout=10, initial_delay=0),
                    "readinessProbe": mongo_probe(period=10, timeout=5, initial_delay=0),
                    "securityContext": restricted_security_context(MONGODB_UID, read_only_root=True),
                    "volumeMounts": [{"name": "data", "mountPath": "/data/db"}, *mongo_scratch_mounts],
                }
            ],
            # On the app's nodes: its volume then lies in a zone where the web pods, which must
            # share MongoDB's zone (todo-prod's pod affinity), can run.
            **pod_spec_fields(todo.placement.nodes_only()),
        }
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": todo.mongodb.storage_size}},
        }
        if todo.mongodb.storage_class:
            claim_spec["storageClassName"] = todo.mongodb.storage_class
        mongodb = k8s.apps.v1.StatefulSet(
            f"{name}-mongodb",
            metadata={"name": MONGODB_APP, "namespace": namespace, "labels": mongo_labels},
            spec={
                "serviceName": MONGODB_APP,
                "replicas": 1,
                "selector": {"matchLabels": mongo_selector},
                # The data outlives the StatefulSet: deleting or scaling it never deletes the volume.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {"metadata": {"labels": mongo_labels}, "spec": mongo_pod_spec},
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": mongo_labels}, "spec": claim_spec}],
            },
            opts=child_opts(self, provider, depends_on=[credentials]),
        )

        # --- Web -----------------------------------------------------------------------------
        web_labels = app_labels(todo.name, "web", environment=args.environment)
        selector = {"app": todo.name}
        http_probe = {"httpGet": {"path": todo.health_path, "port": "http"}}
        web_scratch, web_scratch_mounts = scratch_volumes("writable", todo.writable_paths)
        web_pod_spec: dict[str, Any] = {
            # The web app talks to MongoDB, never to the Kubernetes API.
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(todo.run_as_user),
            "volumes": web_scratch,
            "containers": [
                {
                    "name": WEB_CONTAINER,
                    "image": todo.image,
                    "ports": [{"name": "http", "containerPort": todo.port}],
                    "env": [
                        # The connection under the names Node.js MongoDB apps commonly read.
                        *(
                            {
                                "name": variable,
                                "valueFrom": {"secretKeyRef": {"name": "mongodb-credentials", "key": "uri"}},
                            }
                            for variable in ("MONGODB_URI", "MONGO_URL")
                        ),
                        {"name": "DATABASE_HOST", "value": MONGODB_APP},
                        {"name": "DATABASE_PORT", "value": str(MONGODB_PORT)},
                        {"name": "DATABASE_NAME", "value": DATABASE_NAME},
                        {
                            "name": "DATABASE_USER",
                            "valueFrom": {"secretKeyRef": {"name": "mongodb-credentials", "key": "username"}},
                        },
                        {
                            "name": "DATABASE_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "mongodb-credentials", "key": "password"}},
                        },
                    ],
                    "resources": resources(todo.resources),
                    "livenessProbe": {
                        **http_probe,
                        "initialDelaySeconds": 10,
                        "periodSeconds": 15,
                        "timeoutSeconds": 2,
                        "failureThreshold": 3,
                    },
                    "readinessProbe": {**http_probe, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
                    "securityContext": restricted_security_context(todo.run_as_user, read_only_root=True),
                    "volumeMounts": web_scratch_mounts,
                }
            ],
            **pod_spec_fields(todo.placement),
        }
        web_opts = child_opts(
            self,
            provider,
            depends_on=[mongodb, *priority],
            # The HPA owns the replica count once it runs; `replicas` is only the starting point.
            ignore_changes=["spec.replicas"] if scaling.enabled else None,
        )
        web_metadata: dict[str, Any] = {"name": todo.name, "namespace": namespace, "labels": web_labels}
        if not scaling.enabled:
            # Once an HPA has scaled the Deployment, kube-controller-manager owns spec.replicas and
            # server-side apply refuses to take it back unless forced: manual scaling needs that.
            web_metadata["annotations"] = {"pulumi.com/patchForce": "true"}
        web = k8s.apps.v1.Deployment(
            f"{name}-web",
            metadata=web_metadata,
            spec={
                "replicas": todo.replicas,
                "selector": {"matchLabels": selector},
                # Never below the desired count during a rollout: add one, then retire one.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {"metadata": {"labels": web_labels}, "spec": web_pod_spec},
            },
            opts=web_opts,
        )
        exposed = args.balancer.expose(
            todo.name,
            namespace=namespace,
            selector=selector,
            port=SERVICE_PORT,
            target_port=todo.port,
            parent=self,
            provider=provider,
            labels=web_labels,
            resource_name=f"{name}-web-service",
            exposure=todo.exposure,
        )

        # --- NetworkPolicies: nothing reaches a pod of the namespace unless allowed here -----
        deny_ingress(f"{name}-deny-ingress", namespace, self, provider)
        allow_ingress(
            f"{name}-web-ingress",
            namespace,
            policy_name="web-from-clients",
            pods=selector,
            # The balancer's clients (loadBalancerSourceRanges filters them at the balancer: once
            # kube-proxy or an NLB with IP targets forwards a connection, its source is a node
            # or the NLB, not the client), a mesh gateway, and the load test.
            sources=[Peer.anywhere()],
            ports=[todo.port],
            parent=self,
            provider=provider,
        )
        allow_ingress(
            f"{name}-mongodb-ingress",
            namespace,
            policy_name="mongodb-from-web",
            pods=mongo_selector,
            sources=[Peer.pods(selector)],
            ports=[MONGODB_PORT],
            parent=self,
            provider=provider,
        )
        limit_egress(
            f"{name}-mongodb-egress",
            namespace,
            policy_name="mongodb-egress",
            pods=mongo_selector,
            destinations=args.proxy.egress,
            parent=self,
            provider=provider,
        )
        allow_proxy_ingress(f"{name}-mesh-proxy", namespace, args.proxy, parent=self, provider=provider)

        if scaling.enabled:
            Autoscaler(
                f"{name}-autoscaler",
                AutoscalerArgs(
                    target_name=todo.name,
                    namespace=namespace,
                    scaling=scaling,
                    container=WEB_CONTAINER if args.meshed else None,
                ),
                provider,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[web]),
            )
        most_replicas = max(todo.replicas, scaling.max_replicas if scaling.enabled else 0)
        if most_replicas > 1:
            pod_disruption_budget(f"{name}-web-pdb", todo.name, namespace, selector, self, provider)

        self.namespace = namespace
        self.service_name = exposed.service.metadata.name
        self.url = exposed.url
        self.register_outputs(
            {
                "namespace": self.namespace,
                "serviceName": self.service_name,
                "url": self.url,
                "mongodbUri": self.mongodb_uri,
            }
        )
