"""The CSI hostpath driver and the CSI snapshot controller: snapshot-capable volumes on a stock kind
cluster, with nothing to prepare on the host.

kubernetes-csi/csi-driver-host-path ships no Helm chart, only manifests per Kubernetes release
(deploy/kubernetes-1.34/hostpath at v1.18.0) that `deploy.sh` completes with each sidecar's RBAC
from its own repository. They are built here as Pulumi objects from that layout instead of
fetched at deploy time: every container then has the CPU and memory requests and the liveness
and readiness probes the policy pack asks for (upstream sets no resources and probes only two of
its containers), the namespace is ours rather than `default`, sidecars run unprivileged, and the
offline plan validates every object against the Kubernetes schema. Only the VolumeSnapshot CRDs
are fetched, from external-snapshotter v8.6.0's client/config/crd at its release tag (as Istio's
CRDs are): they hold no pods, and their schemas are upstream's to keep.

Layout, as upstream's single-node deployment: one StatefulSet pod runs the driver, its node
registrar and liveness probe, and the controller sidecars (provisioner, attacher, resizer,
snapshotter). Volumes live in `data_dir` on the node that runs the pod, and are pinned to it
(topology key `topology.hostpath.csi/node`): fine for kind's single worker; a cluster whose
stateful pods spread over nodes needs a real storage system (LocalPV-ZFS, EBS). The snapshot
controller runs apart, in a restricted namespace: it only talks to the API server.

Every controller sidecar runs with leader election and an HTTP endpoint, which is what serves
`/healthz/leader-election` (csi-lib-utils' leader-election health check): their probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import (
    MANAGED_BY,
    accepted_findings,
    app_labels,
    child_opts,
    namespace,
    restricted_security_context,
)
from components.network import API_SERVER, deny_ingress, limit_egress
from settings.storage import CsiHostPathSettings

DRIVER_NAME = "hostpath.csi.k8s.io"
#: external-snapshotter's CRDs, at the release whose snapshot controller runs here.
SNAPSHOTTER_VERSION = "v8.6.0"
SNAPSHOT_CRDS_URL = (
    "https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/{version}/client/config/crd/"
    "snapshot.storage.k8s.io_{plural}.yaml"
)
SNAPSHOT_CRD_PLURALS = ("volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots")

REGISTRY = "registry.k8s.io/sig-storage"
#: Images of csi-driver-host-path v1.18.0's deploy/kubernetes-1.34, and the snapshot controller
#: of the same external-snapshotter release as its csi-snapshotter.
IMAGES = {
    "hostpath": f"{REGISTRY}/hostpathplugin:v1.17.1",
    "node-driver-registrar": f"{REGISTRY}/csi-node-driver-registrar:v2.17.0",
    "liveness-probe": f"{REGISTRY}/livenessprobe:v2.19.0",
    "csi-attacher": f"{REGISTRY}/csi-attacher:v4.12.0",
    "csi-provisioner": f"{REGISTRY}/csi-provisioner:v6.3.0",
    "csi-resizer": f"{REGISTRY}/csi-resizer:v2.2.1",
    "csi-snapshotter": f"{REGISTRY}/csi-snapshotter:{SNAPSHOTTER_VERSION}",
    "snapshot-controller": f"{REGISTRY}/snapshot-controller:{SNAPSHOTTER_VERSION}",
}
#: Each controller sidecar's HTTP endpoint (leader-election health and metrics), one port each
#: in the shared pod network namespace.
SIDECAR_PORTS = {"csi-attacher": 8081, "csi-provisioner": 8082, "csi-resizer": 8083, "csi-snapshotter": 8084}
HEALTH_PORT = 9898
REGISTRAR_PORT = 9809
SNAPSHOT_CONTROLLER_PORT = 8080
API_SERVER_PORTS = (443, 6443)

PLUGIN_NAME = "csi-hostpathplugin"
PLUGIN_LABELS = app_labels(PLUGIN_NAME, "plugin")
CONTROLLER_NAME = "snapshot-controller"
CONTROLLER_LABELS = app_labels(CONTROLLER_NAME, "controller")
SOCKET = "/csi/csi.sock"
KUBELET_PLUGIN_DIR = "/var/lib/kubelet/plugins/csi-hostpath"

_LEASES = {
    "apiGroups": ["coordination.k8s.io"],
    "resources": ["leases"],
    "verbs": ["get", "watch", "list", "delete", "update", "create"],
}
#: Cluster-wide rules of each sidecar, as its release's deploy/kubernetes/rbac.yaml grants them.
SIDECAR_CLUSTER_RULES: dict[str, list[dict[str, Any]]] = {
    # external-provisioner v6.3.0
    "provisioner": [
        {
            "apiGroups": [""],
            "resources": ["persistentvolumes"],
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshots"],
            "verbs": ["get", "list", "watch", "update"],
        },
        {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshotcontents"], "verbs": ["get", "list"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["csinodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"], "verbs": ["get", "list", "watch"]},
    ],
    # external-attacher v4.12.0
    "attacher": [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["csinodes"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["volumeattachments"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments/status"], "verbs": ["patch"]},
    ],
    # external-resizer v2.2.1
    "resizer": [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattributesclasses"], "verbs": ["get", "list", "watch"]},
    ],
    # external-snapshotter v8.6.0, csi-snapshotter (volume group snapshots are off: the
    # CSIVolumeGroupSnapshot feature gate defaults to false, so no groupsnapshot rules)
    "snapshotter": [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshotclasses"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshotcontents"],
            "verbs": ["get", "list", "watch", "update", "patch"],
        },
        {
            "apiGroups": ["snapshot.storage.k8s.io"],
            "resources": ["volumesnapshotcontents/status"],
            "verbs": ["update", "patch"],
        },
    ],
}
#: The sidecars' namespaced rules (external-provisioner's external-provisioner-cfg; the others
#: only need leases).
SIDECAR_NAMESPACE_RULES: list[dict[str, Any]] = [
    _LEASES,
    {
        "apiGroups": ["storage.k8s.io"],
        "resources": ["csistoragecapacities"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"]},
]
#: external-snapshotter v8.6.0's snapshot-controller-runner, without the groupsnapshot rules.
SNAPSHOT_CONTROLLER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
    {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshotclasses"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshotcontents"],
        "verbs": ["create", "get", "list", "watch", "update", "delete", "patch"],
    },
    {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshotcontents/status"], "verbs": ["patch"]},
    {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshots"],
        "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"],
    },
    {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots/status"], "verbs": ["update", "patch"]},
]


def retain_on_delete(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult:
    """A transform that marks every resource it sees retainOnDelete (what the engine applies to a
    component's children, the provider-registered ones included)."""
    opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(retain_on_delete=True))
    return pulumi.ResourceTransformResult(props=args.props, opts=opts)


def _requests(cpu: str, memory: str, limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}


def _http(
    path: str, port: int | str, *, period: int = 10, timeout: int = 3, failures: int = 3, delay: int = 10
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def sidecar_security_context() -> dict[str, Any]:
    """The sidecars need no privilege: they only talk to the driver over its socket. They run as
    root (the images' user), because the driver, which must be privileged to mount, creates the
    socket as root; with every capability dropped, root keeps only the socket's owner rights."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _controller_sidecar(name: str, extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    port = SIDECAR_PORTS[name]
    health = "/healthz/leader-election"
    return {
        "name": name,
        "image": IMAGES[name],
        "args": [
            "--v=2",
            f"--csi-address={SOCKET}",
            "--leader-election",
            f"--http-endpoint=:{port}",
            *extra_args,
        ],
        "ports": [{"name": name.removeprefix("csi-"), "containerPort": port, "protocol": "TCP"}],
        "livenessProbe": _http(health, port, failures=6),
        "readinessProbe": _http(health, port),
        "resources": _requests("10m", "32Mi", "128Mi"),
        "securityContext": sidecar_security_context(),
        "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi"}],
    }


def plugin_pod_spec(spec: CsiHostPathSettings) -> dict[str, Any]:
    """The driver's pod: upstream's single-node layout, with resources and probes everywhere."""
    node_name = {
        "name": "KUBE_NODE_NAME",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
    }
    hostpath = {
        "name": "hostpath",
        "image": IMAGES["hostpath"],
        "args": [f"--drivername={DRIVER_NAME}", "--v=2", "--endpoint=$(CSI_ENDPOINT)", "--nodeid=$(KUBE_NODE_NAME)"],
        "env": [{"name": "CSI_ENDPOINT", "value": f"unix://{SOCKET}"}, node_name],
        # Privileged: it mounts volumes into pods' directories with Bidirectional mount
        # propagation (only privileged containers may) and creates loop devices for block volumes.
        "securityContext": {"privileged": True},
        # Served by the liveness-probe container (same pod network), which asks the driver's
        # Probe() over the socket: the driver's own health.
        "ports": [{"name": "healthz", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "livenessProbe": _http("/healthz", "healthz", failures=5),
        "readinessProbe": _http("/healthz", "healthz"),
        # Snapshots are tarballs the driver writes itself: room for that.
        "resources": _requests("20m", "64Mi", "512Mi"),
        "volumeMounts": [
            {"name": "socket-dir", "mountPath": "/csi"},
            {"name": "mountpoint-dir", "mountPath": "/var/lib/kubelet/pods", "mountPropagation": "Bidirectional"},
            {"name": "plugins-dir", "mountPath": "/var/lib/kubelet/plugins", "mountPropagation": "Bidirectional"},
            {"name": "csi-data-dir", "mountPath": "/csi-data-dir"},
            {"name": "dev-dir", "mountPath": "/dev"},
        ],
    }
    registrar = {
        "name": "node-driver-registrar",
        "image": IMAGES["node-driver-registrar"],
        "args": [
            "--v=2",
            f"--csi-address={SOCKET}",
            f"--kubelet-registration-path={KUBELET_PLUGIN_DIR}/csi.sock",
            f"--http-endpoint=:{REGISTRAR_PORT}",
        ],
        "env": [node_name],
        "ports": [{"name": "registrar", "containerPort": REGISTRAR_PORT, "protocol": "TCP"}],
        "livenessProbe": _http("/healthz", "registrar", delay=30, timeout=5),
        "readinessProbe": _http("/healthz", "registrar", timeout=5),
        "resources": _requests("10m", "16Mi", "64Mi"),
        "securityContext": sidecar_security_context(),
        "volumeMounts": [
            {"name": "socket-dir", "mountPath": "/csi"},
            {"name": "registration-dir", "mountPath": "/registration"},
        ],
    }
    liveness = {
        "name": "liveness-probe",
        "image": IMAGES["liveness-probe"],
        "args": [f"--csi-address={SOCKET}", f"--health-port={HEALTH_PORT}"],
        # Its own probes check that it serves; what it serves (the driver's health) is the
        # driver container's probe.
        "livenessProbe": {"tcpSocket": {"port": HEALTH_PORT}, "periodSeconds": 10, "timeoutSeconds": 3},
        "readinessProbe": {"tcpSocket": {"port": HEALTH_PORT}, "periodSeconds": 10, "timeoutSeconds": 3},
        "resources": _requests("5m", "16Mi", "64Mi"),
        "securityContext": sidecar_security_context(),
        "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi"}],
    }

    def host(name: str, path: str, kind: str) -> dict[str, Any]:
        return {"name": name, "hostPath": {"path": path, "type": kind}}

    return {
        "serviceAccountName": PLUGIN_NAME,
        "containers": [
            hostpath,
            registrar,
            liveness,
            _controller_sidecar("csi-attacher"),
            _controller_sidecar("csi-provisioner", ("--feature-gates=Topology=true",)),
            _controller_sidecar("csi-resizer"),
            _controller_sidecar("csi-snapshotter"),
        ],
        "volumes": [
            host("socket-dir", KUBELET_PLUGIN_DIR, "DirectoryOrCreate"),
            host("mountpoint-dir", "/var/lib/kubelet/pods", "DirectoryOrCreate"),
            host("registration-dir", "/var/lib/kubelet/plugins_registry", "Directory"),
            host("plugins-dir", "/var/lib/kubelet/plugins", "Directory"),
            host("csi-data-dir", spec.data_dir, "DirectoryOrCreate"),
            host("dev-dir", "/dev", "Directory"),
        ],
    }


def snapshot_controller_pod_spec() -> dict[str, Any]:
    container = {
        "name": CONTROLLER_NAME,
        "image": IMAGES["snapshot-controller"],
        "args": ["--v=2", "--leader-election=true", f"--http-endpoint=:{SNAPSHOT_CONTROLLER_PORT}"],
        "ports": [{"name": "http", "containerPort": SNAPSHOT_CONTROLLER_PORT, "protocol": "TCP"}],
        "livenessProbe": _http("/healthz/leader-election", "http", failures=6),
        "readinessProbe": _http("/healthz/leader-election", "http"),
        "resources": _requests("10m", "32Mi", "128Mi"),
        "securityContext": restricted_security_context(65532),
    }
    return {
        "serviceAccountName": CONTROLLER_NAME,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }


@dataclass(frozen=True)
class CsiHostPathArgs:
    settings: CsiHostPathSettings


class CsiHostPath(pulumi.ComponentResource):
    """The CSI hostpath driver, the snapshot controller and (unless the cluster has them) the
    VolumeSnapshot CRDs. `ready` is what StorageClasses and VolumeSnapshotClasses wait for."""

    ready: list[pulumi.Resource]
    namespace: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: CsiHostPathArgs,
        provider: pulumi.ProviderResource,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        spec = args.settings
        if spec.namespace == spec.snapshot_controller_namespace:
            raise ValueError(
                "CsiHostPathSettings.snapshotControllerNamespace must differ from namespace: the driver's "
                "namespace admits privileged pods, the controller's only restricted ones"
            )
        super().__init__("scaleplane:storage:CsiHostPath", name, None, opts)

        crds: list[pulumi.Resource] = []
        if spec.install_snapshot_crds:
            crds.append(
                k8s.yaml.v2.ConfigGroup(
                    f"{name}-snapshot-crds",
                    files=[
                        SNAPSHOT_CRDS_URL.format(version=SNAPSHOTTER_VERSION, plural=p) for p in SNAPSHOT_CRD_PLURALS
                    ],
                    # Retained: deleting a CRD deletes every object of it, and the database's
                    # VolumeSnapshots are retained on delete with their data; without the
                    # controllers (gone with the stack) their finalizers would also hold the CRD's
                    # deletion forever. The group's own retainOnDelete does not reach the CRDs it
                    # registers (pulumi/pulumi-kubernetes#3065), a transform on it does.
                    opts=child_opts(self, provider, retain_on_delete=True, transforms=[retain_on_delete]),
                )
            )

        # Privileged: the driver mounts volumes with Bidirectional propagation and uses hostPath
        # volumes (kubelet's directories, /dev, the data directory), which baseline forbids.
        plugin_ns = namespace(f"{name}-namespace", spec.namespace, self, provider, pod_security="privileged")
        controller_ns = namespace(
            f"{name}-controller-namespace",
            spec.snapshot_controller_namespace,
            self,
            provider,
            pod_security="restricted",
        )
        self._network_policies(name, plugin_ns, PLUGIN_LABELS, provider)
        self._network_policies(name + "-controller", controller_ns, CONTROLLER_LABELS, provider)

        self.csi_driver = k8s.storage.v1.CSIDriver(
            f"{name}-driver",
            metadata={"name": DRIVER_NAME, "labels": dict(MANAGED_BY)},
            spec={
                # Attach is a no-op in this driver, but the attacher sidecar runs, as upstream's.
                "attachRequired": True,
                "podInfoOnMount": True,
                "volumeLifecycleModes": ["Persistent"],
                "fsGroupPolicy": "File",
            },
            opts=child_opts(self, provider),
        )
        plugin_rbac = self._plugin_rbac(name, spec, plugin_ns, provider)
        self.plugin = k8s.apps.v1.StatefulSet(
            f"{name}-plugin",
            metadata={
                "name": PLUGIN_NAME,
                "namespace": plugin_ns.metadata["name"],
                "labels": PLUGIN_LABELS,
                "annotations": accepted_findings(
                    CKV_K8S_23="the hostpath driver mounts volumes into the kubelet's pod directory (privileged, root)",
                    CKV_K8S_29="its sidecars carry container securityContexts; the driver container is privileged",
                    CKV_K8S_38="the CSI sidecars (provisioner, snapshotter, resizer, attacher) call the Kubernetes API",
                ),
            },
            spec={
                "serviceName": PLUGIN_NAME,
                # One replica: the driver keeps volumes on the node its pod runs on.
                "replicas": 1,
                "selector": {"matchLabels": PLUGIN_LABELS},
                "template": {"metadata": {"labels": PLUGIN_LABELS}, "spec": plugin_pod_spec(spec)},
            },
            opts=child_opts(self, provider, depends_on=[*crds, self.csi_driver, *plugin_rbac]),
        )
        controller_rbac = self._controller_rbac(name, controller_ns, provider)
        self.snapshot_controller = k8s.apps.v1.Deployment(
            f"{name}-snapshot-controller",
            metadata={
                "name": CONTROLLER_NAME,
                "namespace": controller_ns.metadata["name"],
                "labels": CONTROLLER_LABELS,
                "annotations": accepted_findings(
                    CKV_K8S_38="the snapshot controller watches and updates VolumeSnapshots through the Kubernetes API"
                ),
            },
            spec={
                "replicas": 1,
                "selector": {"matchLabels": CONTROLLER_LABELS},
                "template": {"metadata": {"labels": CONTROLLER_LABELS}, "spec": snapshot_controller_pod_spec()},
            },
            opts=child_opts(self, provider, depends_on=[*crds, *controller_rbac]),
        )
        self.ready = [*crds, self.csi_driver, self.plugin, self.snapshot_controller]
        self.namespace = plugin_ns.metadata["name"]
        self.register_outputs({"namespace": self.namespace, "driver": DRIVER_NAME})

    def _network_policies(
        self, name: str, ns: k8s.core.v1.Namespace, pods: dict[str, str], provider: pulumi.ProviderResource
    ) -> None:
        """No ingress at all (kubelet probes are not subject to NetworkPolicy); egress to DNS and
        the API server only. The driver talks to the kubelet over unix sockets, not the network."""
        deny_ingress(f"{name}-deny-ingress", ns.metadata["name"], self, provider)
        limit_egress(
            f"{name}-egress",
            ns.metadata["name"],
            policy_name=f"{pods['app']}-egress",
            pods=pods,
            destinations=[(API_SERVER, API_SERVER_PORTS)],
            parent=self,
            provider=provider,
        )

    def _plugin_rbac(
        self, name: str, spec: CsiHostPathSettings, ns: k8s.core.v1.Namespace, provider: pulumi.ProviderResource
    ) -> list[pulumi.Resource]:
        ns_name = ns.metadata["name"]
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": PLUGIN_NAME, "namespace": ns_name, "labels": PLUGIN_LABELS},
            opts=child_opts(self, provider),
        )
        subject = [{"kind": "ServiceAccount", "name": PLUGIN_NAME, "namespace": spec.namespace}]
        made: list[pulumi.Resource] = [account]
        for sidecar, rules in SIDECAR_CLUSTER_RULES.items():
            role_name = f"scaleplane-csi-hostpath-{sidecar}"
            role = k8s.rbac.v1.ClusterRole(
                f"{name}-{sidecar}-role",
                metadata={"name": role_name, "labels": PLUGIN_LABELS},
                rules=rules,
                opts=child_opts(self, provider),
            )
            binding = k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-{sidecar}-role-binding",
                metadata={"name": role_name, "labels": PLUGIN_LABELS},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                subjects=subject,
                opts=child_opts(self, provider, depends_on=[role, account]),
            )
            made.extend([role, binding])
        role = k8s.rbac.v1.Role(
            f"{name}-sidecars-role",
            metadata={"name": PLUGIN_NAME, "namespace": ns_name, "labels": PLUGIN_LABELS},
            rules=SIDECAR_NAMESPACE_RULES,
            opts=child_opts(self, provider),
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-sidecars-role-binding",
            metadata={"name": PLUGIN_NAME, "namespace": ns_name, "labels": PLUGIN_LABELS},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PLUGIN_NAME},
            subjects=subject,
            opts=child_opts(self, provider, depends_on=[role, account]),
        )
        return [*made, role, binding]

    def _controller_rbac(
        self, name: str, ns: k8s.core.v1.Namespace, provider: pulumi.ProviderResource
    ) -> list[pulumi.Resource]:
        ns_name = ns.metadata["name"]
        account = k8s.core.v1.ServiceAccount(
            f"{name}-controller-account",
            metadata={"name": CONTROLLER_NAME, "namespace": ns_name, "labels": CONTROLLER_LABELS},
            opts=child_opts(self, provider),
        )
        subject = [{"kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": ns_name}]
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-controller-role",
            metadata={"name": "scaleplane-snapshot-controller", "labels": CONTROLLER_LABELS},
            rules=SNAPSHOT_CONTROLLER_RULES,
            opts=child_opts(self, provider),
        )
        cluster_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-controller-role-binding",
            metadata={"name": "scaleplane-snapshot-controller", "labels": CONTROLLER_LABELS},
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "scaleplane-snapshot-controller",
            },
            subjects=subject,
            opts=child_opts(self, provider, depends_on=[cluster_role, account]),
        )
        leases = k8s.rbac.v1.Role(
            f"{name}-controller-leases-role",
            metadata={"name": "snapshot-controller-leaderelection", "namespace": ns_name, "labels": CONTROLLER_LABELS},
            rules=[_LEASES],
            opts=child_opts(self, provider),
        )
        leases_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-controller-leases-role-binding",
            metadata={"name": "snapshot-controller-leaderelection", "namespace": ns_name, "labels": CONTROLLER_LABELS},
            role_ref={
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "snapshot-controller-leaderelection",
            },
            subjects=subject,
            opts=child_opts(self, provider, depends_on=[leases, account]),
        )
        return [account, cluster_role, cluster_binding, leases, leases_binding]
