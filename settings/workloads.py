"""Settings of the workloads every stack runs: Metrics Server, the to-do app, MinIO, load test."""

from __future__ import annotations

from typing import Annotated, Optional, Self

from pydantic import AfterValidator, Field, model_validator

from policy.scaleplane_policy.references import parse_image
from policy.scaleplane_policy.values import parse_quantity
from settings.base import ChartVersion, DnsLabel, check_replica_range, settings, shown
from settings.placement import Placement
from settings.traffic import ExposureSettings

Replicas = Annotated[int, Field(ge=0, le=1000)]
StorageClassName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


def _quantity(text: str) -> str:
    try:
        amount = parse_quantity(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a Kubernetes quantity (e.g. 250m, 1.5, 512Mi, 10Gi, 1e3)") from None
    if amount < 0:
        raise ValueError(f"{shown(text)} is negative; resources and sizes cannot be")
    return text


#: A Kubernetes resource quantity, parsed by the grammar the API server uses (the policy pack's parser).
Quantity = Annotated[str, AfterValidator(_quantity)]

#: Volume sizes: at least 1Mi, since no filesystem fits in less (and a 0 request is refused by the API
#: server for a PVC); at most 64Ti, the largest volume EBS makes (io2 Block Express; gp3 stops at 16Ti).
MIN_VOLUME = parse_quantity("1Mi")
MAX_VOLUME = parse_quantity("64Ti")


def _volume_size(text: str) -> str:
    size = parse_quantity(_quantity(text))
    if not MIN_VOLUME <= size <= MAX_VOLUME:
        raise ValueError(f"{shown(text)} is outside 1Mi..64Ti (no filesystem fits below 1Mi; EBS volumes end at 64Ti)")
    return text


StorageSize = Annotated[str, AfterValidator(_volume_size)]


def _pinned(image: str) -> str:
    try:
        reference = parse_image(image)
    except ValueError as error:
        raise ValueError(f"image {shown(image)}: {error}") from None
    if not reference.pinned:
        why = "uses the tag 'latest'" if reference.tag == "latest" else "has no tag, which means latest"
        raise ValueError(f"image {shown(image)} {why}; pin a version or a digest")
    return image


#: [registry[:port]/]path[:tag][@digest], pinned (policy/scaleplane_policy/references.py: one
#: grammar and one meaning of "pinned" for settings and the policy pack).
ImageRef = Annotated[str, AfterValidator(_pinned)]


@settings
class Resources:
    """Container resources: requests always, and a memory limit (CPU limits throttle, so none)."""

    cpu_request: Quantity = "100m"
    memory_request: Quantity = "128Mi"
    memory_limit: Quantity = "256Mi"

    @model_validator(mode="after")
    def _request_within_limit(self) -> Self:
        # The API server refuses a container whose request exceeds its limit.
        if parse_quantity(self.memory_request) > parse_quantity(self.memory_limit):
            raise ValueError(f"memoryRequest ({self.memory_request}) must not exceed memoryLimit ({self.memory_limit})")
        return self


@settings
class MetricsServerSettings:
    """Metrics Server, installed from its Helm chart so `kubectl top` and the HPA work."""

    enabled: bool = True
    chart_version: ChartVersion = "3.13.1"
    namespace: DnsLabel = "kube-system"
    #: Only for clusters whose kubelets serve self-signed certificates (kind, k3d, minikube).
    kubelet_insecure_tls: bool = False
    replicas: Annotated[int, Field(ge=1, le=10)] = 1


@settings
class ScalingBehavior:
    """HPA scale-up/scale-down behaviour for one direction."""

    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)]
    #: At most this many percent of the current replicas are added/removed per period.
    percent: Annotated[int, Field(ge=1, le=1000)] = 100
    #: At most this many pods are added/removed per period.
    pods: Annotated[int, Field(ge=1, le=1000)] = 4
    period_seconds: Annotated[int, Field(ge=1, le=1800)] = 15


@settings
class AutoscalingSettings:
    """autoscaling/v2 HPA; defaults are the playbook's: 1 to 5 replicas at 50% average CPU."""

    enabled: bool = True
    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 5
    target_cpu_utilization: Annotated[int, Field(ge=1, le=1000)] = 50
    #: Optional average memory utilisation target (percent of the memory request).
    target_memory_utilization: Optional[Annotated[int, Field(ge=1, le=1000)]] = None
    scale_up: ScalingBehavior = ScalingBehavior(stabilization_window_seconds=0)
    scale_down: ScalingBehavior = ScalingBehavior(stabilization_window_seconds=300, percent=100, pods=1)

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        check_replica_range(self.min_replicas, self.max_replicas)
        return self


@settings
class MongoSettings:
    """The to-do app's MongoDB: a StatefulSet with a persistent volume and generated credentials."""

    image: ImageRef = "docker.io/library/mongo:7.0.14"
    storage_size: StorageSize = "8Gi"
    #: None: the cluster's default StorageClass.
    storage_class: Optional[StorageClassName] = None
    resources: Resources = Resources(cpu_request="250m", memory_request="512Mi", memory_limit="1Gi")


@settings
class TodoSettings:
    """The playbook's to-do application: a Node.js web service plus MongoDB."""

    #: Deployment name; the playbook runs todo-dev on development nodes and todo-prod on production.
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")] = "todo-dev"
    namespace: DnsLabel = "todo"
    #: The web image. The default is a stand-in that meets the restricted Pod Security level:
    #: NGINX's unprivileged image (uid 101, HTTP on 8080, writes only /tmp), serving its welcome
    #: page at "/". Point it at your Node.js build, which reads MongoDB from MONGODB_URI or
    #: MONGO_URL (a secret connection string) or DATABASE_HOST/PORT/NAME/USER/PASSWORD.
    image: ImageRef = "docker.io/nginxinc/nginx-unprivileged:1.26.3-alpine-slim"
    #: The container's HTTP port: 1024 or above, which a process without capabilities may bind.
    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    health_path: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/"
    #: The non-root uid (and gid) the image's process runs as; the pod sets it explicitly.
    run_as_user: Annotated[int, Field(ge=1, le=2_147_483_647)] = 101
    #: The only paths the container writes (emptyDir volumes); the root filesystem is read-only.
    writable_paths: tuple[Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")], ...] = ("/tmp",)
    #: Desired replicas when autoscaling is off (manual scaling: 1 -> 3 -> 2 in the playbook).
    replicas: Replicas = 1
    resources: Resources = Resources()
    autoscaling: AutoscalingSettings = AutoscalingSettings()
    placement: Placement = Placement()
    mongodb: MongoSettings = MongoSettings()
    #: The web Service's balancer: scheme and client source ranges.
    exposure: ExposureSettings = ExposureSettings()

    @model_validator(mode="after")
    def _replicas_within_autoscaling_range(self) -> Self:
        scaling = self.autoscaling
        if scaling.enabled and not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must lie within the autoscaling range "
                f"{scaling.min_replicas}..{scaling.max_replicas} (autoscaling.minReplicas..maxReplicas)"
            )
        return self


@settings
class MinioSettings:
    """Self-healing MinIO: a StatefulSet whose pods are recreated when deleted."""

    enabled: bool = True
    namespace: DnsLabel = "minio"
    image: ImageRef = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
    #: 1 runs a single server; 4 or more run distributed erasure coding (MinIO needs >= 4 drives).
    replicas: Annotated[int, Field(ge=1, le=32)] = 4
    storage_size: StorageSize = "10Gi"
    storage_class: Optional[StorageClassName] = None
    resources: Resources = Resources(cpu_request="250m", memory_request="512Mi", memory_limit="1Gi")
    placement: Placement = Placement()
    #: minio-service's balancer (the S3 API): scheme and client source ranges.
    exposure: ExposureSettings = ExposureSettings()

    @model_validator(mode="after")
    def _erasure_set_size(self) -> Self:
        if 1 < self.replicas < 4:
            raise ValueError(
                f"replicas is {self.replicas}: MinIO runs either 1 server or 4 and more "
                "(distributed mode needs at least 4 drives)"
            )
        return self


@settings
class LoadTestSettings:
    """A bounded busybox load generator that drives the to-do app's HPA. Off by default."""

    enabled: bool = False
    image: ImageRef = "docker.io/library/busybox:1.37.0"
    #: Total requests each worker sends before it stops.
    requests: Annotated[int, Field(ge=1, le=1_000_000)] = 50_000
    #: Hard stop for the Job (activeDeadlineSeconds), whatever the request count.
    duration_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    workers: Annotated[int, Field(ge=1, le=20)] = 1
