"""A bounded load generator (the playbook's busybox wget loop) that drives an HPA up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import app_labels, child_opts, restricted_security_context
from settings.workloads import LoadTestSettings

#: Both meshes inject their proxy as a Kubernetes native sidecar for pods that ask.
NATIVE_SIDECAR_ANNOTATIONS = {
    "sidecar.istio.io/nativeSidecar": "true",
    "config.linkerd.io/proxy-enable-native-sidecar": "true",
}

# Each worker sends at most $REQUESTS requests; the Job's deadline stops it whatever the count.
LOOP = (
    'i=0; while [ "$i" -lt "$REQUESTS" ]; do '
    'wget -q -O /dev/null -T 2 "$TARGET" || true; i=$((i+1)); '
    'done; echo "sent $i requests to $TARGET"'
)


@dataclass(frozen=True)
class LoadTestArgs:
    settings: LoadTestSettings
    #: The URL every worker requests, e.g. the to-do Service's in-cluster address.
    target_url: pulumi.Input[str]
    namespace: pulumi.Input[str]


class LoadTest(pulumi.ComponentResource):
    """A Job of busybox workers looping `wget` against a target, bounded in requests and time."""

    job_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: LoadTestArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        load = args.settings
        if not load.enabled:
            raise ValueError("LoadTestArgs.settings.enabled is false: create no LoadTest")
        super().__init__("scaleplane:workloads:LoadTest", name, None, opts)
        labels = app_labels("load-generator", "load-test")
        job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata={
                "name": "load-generator",
                "namespace": args.namespace,
                "labels": labels,
                # `pulumi up` should start the load, not wait minutes for it to end.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                "parallelism": load.workers,
                "completions": load.workers,
                "backoffLimit": 0,
                "activeDeadlineSeconds": load.duration_seconds,
                "template": {
                    # Meshed (the meshes refuse plaintext clients), with the proxy as a native
                    # sidecar: an init container with restartPolicy Always, which the kubelet stops
                    # once the workers exit, so the Job completes (a classic sidecar would run on
                    # and fail the Job at its deadline). Istio: sidecar.istio.io/nativeSidecar;
                    # Linkerd (edge-26.8.3, pkg/k8s/labels.go): config.linkerd.io/proxy-enable-native-sidecar.
                    "metadata": {"labels": labels, "annotations": dict(NATIVE_SIDECAR_ANNOTATIONS)},
                    "spec": {
                        "restartPolicy": "Never",
                        # wget needs no Kubernetes API credentials.
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "load-generator",
                                "image": load.image,
                                "command": ["/bin/sh", "-c", LOOP],
                                "env": [
                                    {"name": "TARGET", "value": args.target_url},
                                    {"name": "REQUESTS", "value": str(load.requests)},
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "16Mi"},
                                    "limits": {"memory": "32Mi"},
                                },
                                "securityContext": restricted_security_context(65534),
                            }
                        ],
                    },
                },
            },
            opts=child_opts(self, provider),
        )
        self.job_name = job.metadata.name
        self.register_outputs({"jobName": self.job_name})
