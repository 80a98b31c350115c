"""A real "the webhook answers" signal for objects that meet an admission webhook installed in the same `up`.

A chart's wait (Helm's --wait, a helm.v4.Chart's await) ends when its Deployments are ready, and
readiness says nothing about the webhook: MetalLB v0.16.1's controller reports ready on a plain
ping (internal/k8s/k8s.go: `AddReadyzCheck("readyz", healthz.Ping)`) and registers its webhooks
only after certificate rotation has patched the caBundle. An object created in that gap meets a
fail-closed webhook ("connection refused", or an x509 error while the caBundle is empty), and
pulumi-kubernetes does not retry that error: the `up` fails.

`WebhookReady` runs a Job that asks the API server to create sample objects with
`kubectl create --dry-run=server`, every few seconds until all are admitted. A server-side dry
run goes through the whole admission chain, webhooks included (webhooks declaring
`sideEffects: None` or `NoneOnDryRun` are called on dry runs; nothing is stored), so an admitted
probe proves the API server reaches the webhook over TLS with the caBundle it holds, and that the
webhook accepts such an object. Objects that must meet the webhook depend on `ready`: the Job,
which pulumi-kubernetes awaits until it has the `Complete` condition (and fails on `Failed`).

A mutating webhook with `failurePolicy: Ignore` admits objects it never saw: give its probe an
`expect` JSONPath (e.g. the sidecar it injects), which must print something on the admitted object.

The Job is bounded (`attempts` x `interval_seconds`, then `activeDeadlineSeconds`), runs one pinned
kubectl image under the restricted Pod Security profile, with a ServiceAccount that may only
`create` the probed resources (a dry run needs the same permission as a create) and a
NetworkPolicy that lets it reach only the API server's ports. Changing the probes or `revision`
(e.g. the chart version) replaces the Job, so an upgrade waits for the webhook again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import MANAGED_BY, accepted_findings, app_labels, child_opts, restricted_security_context

#: registry.k8s.io's kubectl image (published with every Kubernetes release since 1.28; since
#: kubernetes/kubernetes#119592 it is built on debian-base, so bash and sleep are there). A
#: server-side dry-run create is stable API across the supported version skew.
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.34.1"
#: The API server's usual ports: 443 (EKS, the `kubernetes` Service) and 6443 (kind, kops, kubeadm).
API_SERVER_PORTS = (443, 6443)
#: Non-root user the Job runs as (the image's default user is root).
RUN_AS_USER = 65532
PROBE_DIR = "/probes"
DIGEST_ANNOTATION = "scaleplane.io/webhook-probes"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_API_VERSION = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$")
_RESOURCE = re.compile(r"^[a-z][a-z0-9]*$")

#: Poll every manifest in PROBE_DIR with a server-side dry-run create until all are admitted
#: (and, where a `<n>.jsonpath` file sits beside `<n>.json`, print something at that path).
PROBE_SCRIPT = """set -u
attempt=1
while :; do
  pending=""
  for manifest in "$PROBE_DIR"/*.json; do
    check="${manifest%.json}.jsonpath"
    if [ -f "$check" ]; then
      printed=$(kubectl create --dry-run=server -f "$manifest" -o "jsonpath=$(cat "$check")" 2>&1) \\
        && [ -n "$printed" ] || pending="$pending
  $manifest: ${printed:-admitted without the mark it must set}"
    else
      printed=$(kubectl create --dry-run=server -f "$manifest" -o name 2>&1) || pending="$pending
  $manifest: $printed"
    fi
  done
  if [ -z "$pending" ]; then
    echo "$WEBHOOK admits every probe (attempt $attempt)"
    exit 0
  fi
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "$WEBHOOK still refuses after $attempt attempts:$pending" >&2
    exit 1
  fi
  echo "attempt $attempt of $ATTEMPTS, waiting for $WEBHOOK:$pending"
  attempt=$((attempt + 1))
  sleep "$INTERVAL"
done
"""


@dataclass(frozen=True)
class AdmissionProbe:
    """One object the webhook must admit. It is sent as a dry run, so it is never stored."""

    #: apiVersion of the object ("metallb.io/v1beta1", "v1").
    api_version: str
    kind: str
    #: The resource's plural name, as RBAC names it ("l2advertisements", "pods").
    resource: str
    #: Namespace the object is created in; None for a cluster-scoped kind.
    namespace: Optional[str]
    #: The object's fields besides apiVersion, kind and metadata (spec, data, ...).
    body: Mapping[str, Any] = field(default_factory=dict)
    #: Labels and annotations of the probe (e.g. an injection opt-in).
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: A JSONPath template (kubectl -o jsonpath=...) that must print something on the admitted
    #: object; None: being admitted is enough. For mutating webhooks that fail open.
    expect: Optional[str] = None
    #: The probe is created with metadata.generateName (never a name): it can never clash with an
    #: object that exists, on this run or on a later one.
    generate_name: str = "scaleplane-webhook-probe-"

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    def manifest(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"generateName": self.generate_name, "labels": {**MANAGED_BY, **self.labels}}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        if self.namespace is not None:
            metadata["namespace"] = self.namespace
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata, **self.body}

    def problems(self, where: str) -> list[str]:
        found = []
        if not _API_VERSION.match(self.api_version):
            found.append(f"{where}.api_version {self.api_version!r} is not an apiVersion (group/version or v1)")
        if not self.kind or not self.kind[0].isupper():
            found.append(f"{where}.kind {self.kind!r} must be a Kubernetes kind (e.g. IPAddressPool)")
        if not _RESOURCE.match(self.resource):
            found.append(f"{where}.resource {self.resource!r} must be the lowercase plural RBAC names")
        if self.namespace is not None and not _DNS_LABEL.match(self.namespace):
            found.append(f"{where}.namespace {self.namespace!r} is not a namespace name")
        reserved = sorted({"apiVersion", "kind", "metadata"} & set(self.body))
        if reserved:
            found.append(f"{where}.body must not set {', '.join(reserved)} (the probe sets them)")
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-$", self.generate_name) or len(self.generate_name) > 58:
            found.append(f"{where}.generate_name {self.generate_name!r} must be a DNS label prefix ending in '-'")
        if self.expect is not None and not self.expect.strip():
            found.append(f"{where}.expect must be a JSONPath template or None")
        return found


#: The injection probe's container: never run (a dry run stores nothing), so the smallest image.
INJECTION_PROBE_IMAGE = "registry.k8s.io/pause:3.10"


def injection_probe(
    namespace: str,
    *,
    labels: Optional[Mapping[str, str]] = None,
    annotations: Optional[Mapping[str, str]] = None,
) -> AdmissionProbe:
    """A restricted pod that asks a mesh's injector for a proxy (by `labels` or `annotations`) and
    must come back with init containers: injected, it has the mesh's validator and the proxy as a
    native sidecar; untouched, none. Injectors fail open, so being admitted alone proves nothing."""
    return AdmissionProbe(
        api_version="v1",
        kind="Pod",
        resource="pods",
        namespace=namespace,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        body={
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "probe",
                        "image": INJECTION_PROBE_IMAGE,
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "runAsUser": RUN_AS_USER,
                        },
                    }
                ],
            }
        },
        expect="{.spec.initContainers[*].name}",
    )


@dataclass(frozen=True)
class WebhookReadyArgs:
    #: Who answers, for messages ("MetalLB's validating webhook").
    webhook: str
    #: Namespace the Job, its ServiceAccount and NetworkPolicy run in (it must exist).
    namespace: str
    #: Name of the Job, its ServiceAccount, ConfigMap and RBAC objects (a DNS label, at most 56
    #: characters so that `<name>-probes` and the Job's pod names fit).
    job_name: str
    probes: Sequence[AdmissionProbe]
    #: Anything whose change must re-run the wait (the webhook's chart version): it goes into the
    #: pod template, and a changed template replaces the Job.
    revision: str = ""
    #: How often and how long to try: the Job gives up after attempts x interval_seconds.
    attempts: int = 60
    interval_seconds: int = 5
    image: str = KUBECTL_IMAGE
    #: TCP ports the Job may reach (the API server's; its address is not known to the program).
    api_server_ports: Sequence[int] = API_SERVER_PORTS

    @property
    def deadline_seconds(self) -> int:
        """activeDeadlineSeconds: the polling window plus two minutes for scheduling and the image pull."""
        return self.attempts * self.interval_seconds + 120


class WebhookReady(pulumi.ComponentResource):
    """A Job that completes once the webhook admits every probe; `ready` is what to depend on."""

    #: What objects that meet the webhook must depend on.
    ready: list[pulumi.Resource]
    job_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: WebhookReadyArgs,
        provider: pulumi.ProviderResource,
        *,
        after: Sequence[pulumi.Resource],
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        """`after`: what installs the webhook (its chart or Release) and the namespace the Job runs
        in. Every child waits for it (a component's own depends_on does not reach its children)."""
        self.validate(args)
        if not after:
            raise ValueError("WebhookReady needs `after`: the resources that install the webhook")
        super().__init__("scaleplane:platform:WebhookReady", name, None, opts)
        labels = app_labels(args.job_name, "webhook-ready")
        files = self.probe_files(args)
        after = list(after)

        config_map = k8s.core.v1.ConfigMap(
            f"{name}-probes",
            metadata={"name": f"{args.job_name}-probes", "namespace": args.namespace, "labels": labels},
            data=files,
            opts=child_opts(self, provider, depends_on=after),
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": args.job_name, "namespace": args.namespace, "labels": labels},
            automount_service_account_token=False,
            opts=child_opts(self, provider, depends_on=after),
        )
        grants = self._grants(name, args, labels, account, provider, after)
        policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": args.job_name, "namespace": args.namespace, "labels": labels},
            spec=self.network_policy_spec(args, labels),
            opts=child_opts(self, provider, depends_on=after),
        )
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata={
                "name": args.job_name,
                "namespace": args.namespace,
                "labels": labels,
                "annotations": accepted_findings(
                    CKV_K8S_38="the Job calls the Kubernetes API (kubectl create --dry-run=server)"
                ),
            },
            spec=self.job_spec(args, labels, files),
            opts=child_opts(
                self,
                provider,
                depends_on=[*after, config_map, account, policy, *grants],
                # The name is fixed (the RBAC and NetworkPolicy name it), so a changed template
                # (new probes or revision) deletes the finished Job before creating the new one.
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{args.deadline_seconds + 60}s"),
            ),
        )
        self.ready = [self.job]
        self.job_name = self.job.metadata.apply(lambda m: m["name"])
        self.register_outputs({"jobName": self.job_name})

    @staticmethod
    def validate(args: WebhookReadyArgs) -> None:
        problems: list[str] = []
        if not args.webhook.strip():
            problems.append("WebhookReadyArgs.webhook must say which webhook is waited for")
        if not _DNS_LABEL.match(args.namespace):
            problems.append(f"WebhookReadyArgs.namespace {args.namespace!r} is not a namespace name")
        if not _DNS_LABEL.match(args.job_name) or len(args.job_name) > 56:
            problems.append(f"WebhookReadyArgs.job_name {args.job_name!r} must be a DNS label of at most 56 characters")
        if not args.probes:
            problems.append("WebhookReadyArgs.probes must list at least one object the webhook must admit")
        for index, probe in enumerate(args.probes):
            problems.extend(probe.problems(f"WebhookReadyArgs.probes[{index}]"))
        if not 1 <= args.attempts <= 720:
            problems.append(f"WebhookReadyArgs.attempts must be within 1..720, not {args.attempts}")
        if not 1 <= args.interval_seconds <= 60:
            problems.append(f"WebhookReadyArgs.interval_seconds must be within 1..60, not {args.interval_seconds}")
        if not args.api_server_ports or any(not 1 <= p <= 65535 for p in args.api_server_ports):
            problems.append(
                f"WebhookReadyArgs.api_server_ports must list ports (1..65535), not {args.api_server_ports}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @staticmethod
    def probe_files(args: WebhookReadyArgs) -> dict[str, str]:
        """The ConfigMap's files: `<n>.json` per probe, and `<n>.jsonpath` where it expects a mark."""
        files: dict[str, str] = {}
        for index, probe in enumerate(args.probes):
            stem = f"{index:02d}-{probe.kind.lower()}"
            files[f"{stem}.json"] = json.dumps(probe.manifest(), sort_keys=True)
            if probe.expect is not None:
                files[f"{stem}.jsonpath"] = probe.expect
        return files

    @staticmethod
    def rules(probes: Sequence[AdmissionProbe]) -> dict[Optional[str], list[dict[str, Any]]]:
        """RBAC rules by namespace (None: cluster-scoped): `create` on exactly the probed resources."""
        wanted: dict[Optional[str], set[tuple[str, str]]] = {}
        for probe in probes:
            wanted.setdefault(probe.namespace, set()).add((probe.group, probe.resource))
        return {
            namespace: [
                {"apiGroups": [group], "resources": [resource], "verbs": ["create"]}
                for group, resource in sorted(pairs)
            ]
            for namespace, pairs in wanted.items()
        }

    def _grants(
        self,
        name: str,
        args: WebhookReadyArgs,
        labels: Mapping[str, str],
        account: k8s.core.v1.ServiceAccount,
        provider: pulumi.ProviderResource,
        after: list[pulumi.Resource],
    ) -> list[pulumi.Resource]:
        subject = [{"kind": "ServiceAccount", "name": args.job_name, "namespace": args.namespace}]
        grants: list[pulumi.Resource] = []
        for namespace, rules in sorted(self.rules(args.probes).items(), key=lambda item: item[0] or ""):
            if namespace is None:
                role: pulumi.Resource = k8s.rbac.v1.ClusterRole(
                    f"{name}-cluster-role",
                    metadata={"name": args.job_name, "labels": dict(labels)},
                    rules=rules,
                    opts=child_opts(self, provider, depends_on=after),
                )
                binding: pulumi.Resource = k8s.rbac.v1.ClusterRoleBinding(
                    f"{name}-cluster-role-binding",
                    metadata={"name": args.job_name, "labels": dict(labels)},
                    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": args.job_name},
                    subjects=subject,
                    opts=child_opts(self, provider, depends_on=[*after, role, account]),
                )
            else:
                suffix = "" if namespace == args.namespace else f"-{namespace}"
                role = k8s.rbac.v1.Role(
                    f"{name}-role{suffix}",
                    metadata={"name": args.job_name, "namespace": namespace, "labels": dict(labels)},
                    rules=rules,
                    opts=child_opts(self, provider, depends_on=after),
                )
                binding = k8s.rbac.v1.RoleBinding(
                    f"{name}-role-binding{suffix}",
                    metadata={"name": args.job_name, "namespace": namespace, "labels": dict(labels)},
                    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": args.job_name},
                    subjects=subject,
                    opts=child_opts(self, provider, depends_on=[*after, role, account]),
                )
            grants.extend([role, binding])
        return grants

    @staticmethod
    def network_policy_spec(args: WebhookReadyArgs, labels: Mapping[str, str]) -> dict[str, Any]:
        """No ingress; egress only to the API server's ports (the Job reads the API server's
        address from KUBERNETES_SERVICE_HOST, an IP: it needs no DNS). The destination cannot be
        narrowed further: the API server's endpoint address is the cluster's, not the program's."""
        return {
            "podSelector": {"matchLabels": dict(labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [{"ports": [{"protocol": "TCP", "port": port} for port in args.api_server_ports]}],
        }

    @staticmethod
    def job_spec(args: WebhookReadyArgs, labels: Mapping[str, str], files: Mapping[str, str]) -> dict[str, Any]:
        digest = hashlib.sha256(
            json.dumps({"files": dict(files), "revision": args.revision, "image": args.image}, sort_keys=True).encode()
        ).hexdigest()[:16]
        container = {
            "name": "wait",
            "image": args.image,
            "command": ["/bin/bash", "-c", PROBE_SCRIPT],
            "env": [
                {"name": "WEBHOOK", "value": args.webhook},
                {"name": "PROBE_DIR", "value": PROBE_DIR},
                {"name": "ATTEMPTS", "value": str(args.attempts)},
                {"name": "INTERVAL", "value": str(args.interval_seconds)},
                # kubectl keeps its discovery cache under $HOME/.kube: a writable emptyDir.
                {"name": "HOME", "value": "/tmp"},
            ],
            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "securityContext": restricted_security_context(RUN_AS_USER),
            "volumeMounts": [
                {"name": "probes", "mountPath": PROBE_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        return {
            # The script polls; a second pod only replaces one that was lost (evicted, node gone).
            "backoffLimit": 1,
            "activeDeadlineSeconds": args.deadline_seconds,
            # No ttlSecondsAfterFinished: the finished Job is the record Pulumi holds; deleted by
            # a TTL, every refresh would drop it and every `up` would run it again.
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {DIGEST_ANNOTATION: digest}},
                "spec": {
                    "serviceAccountName": args.job_name,
                    # The one pod that talks to the API server gets the token; the account does not
                    # hand it to anything else.
                    "automountServiceAccountToken": True,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "probes", "configMap": {"name": f"{args.job_name}-probes"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        }
