"""Stack settings, read once from Pulumi config into frozen, validated dataclasses.

`load()` is the only place the program reads `pulumi.Config`; components receive the sections
they need. `from_config()` takes the raw key/value map Pulumi hands a program (every value a
string, structured values as JSON), so tests and the offline plan use exactly the same path.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Self, Union

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from settings import checks
from settings.base import NAMESPACE, SettingsError, key_path, settings, shown
from settings.cluster import (
    ClusterKind,
    EksSettings,
    ExistingClusterSettings,
    KopsSettings,
    refuse_world_open_in_production,
)
from settings.database import DatabaseSettings
from settings.storage import StorageSettings
from settings.traffic import ExposureSettings, IstioSettings, LinkerdSettings, MetalLBSettings, NlbSettings, Scheme
from settings.workloads import (
    LoadTestSettings,
    MetricsServerSettings,
    MinioSettings,
    TodoSettings,
)

__all__ = ["Settings", "SettingsError", "from_config", "load"]

#: Config namespaces this program's providers read; any other namespace is most likely a typo of
#: ours, which Pulumi would pass along and nothing would ever read.
PROVIDER_NAMESPACES = ("pulumi", "kubernetes", "aws", "tls", "random", "command")

BalancerKind = Literal["metallb", "aws-nlb", "cloud"]
MeshKind = Literal["none", "istio", "linkerd"]
KubernetesVersion = Annotated[str, Field(pattern=r"^1\.(2[89]|3[0-7])$")]


@settings
class Settings:
    """Everything one stack deploys. Scalar keys are declared in Pulumi.yaml with the same defaults."""

    #: Environment name, used in labels and outputs (local, dev, staging, prod).
    environment: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")]
    #: Production environments get the stricter policy set (replicas, disruption budgets).
    production: bool = False
    #: Kubernetes minor version: the cluster's version where we create it, and the schema every
    #: rendered object is validated against.
    kubernetes_version: KubernetesVersion = "1.34"
    cluster: ClusterKind = "existing"
    existing_cluster: Optional[ExistingClusterSettings] = None
    #: The EKS cluster (cluster: eks).
    eks: Optional[EksSettings] = None
    #: The kops cluster (cluster: kops).
    kops: Optional[KopsSettings] = None
    #: How LoadBalancer Services get an address: MetalLB, the AWS Load Balancer Controller's NLB,
    #: or the cloud controller's default balancer.
    balancer: BalancerKind = "cloud"
    mesh: MeshKind = "none"
    metrics_server: MetricsServerSettings = MetricsServerSettings()
    todo: TodoSettings = TodoSettings()
    minio: MinioSettings = MinioSettings()
    load_test: LoadTestSettings = LoadTestSettings()
    #: Traffic sections: each belongs to one balancer or mesh choice (checked below).
    metallb: Optional[MetalLBSettings] = None
    nlb: Optional[NlbSettings] = None
    istio: Optional[IstioSettings] = None
    linkerd: Optional[LinkerdSettings] = None
    #: Snapshot-capable storage (CSI driver, StorageClass, VolumeSnapshotClass); None: none installed.
    storage: Optional[StorageSettings] = None
    #: The blue/green Percona database; None: not deployed. Needs `storage`.
    database: Optional[DatabaseSettings] = None

    @model_validator(mode="after")
    def _cluster_section_matches_kind(self) -> Self:
        sections = {
            "existing": ("existingCluster", self.existing_cluster),
            "eks": ("eks", self.eks),
            "kops": ("kops", self.kops),
        }
        for kind, (key, section) in sections.items():
            if kind == self.cluster and section is None:
                raise ValueError(f"cluster is '{kind}' but scaleplane:{key} is not set")
            if kind != self.cluster and section is not None:
                raise ValueError(f"scaleplane:{key} is set but cluster is '{self.cluster}'")
        return self

    @model_validator(mode="after")
    def _control_planes_not_world_open_in_production(self) -> Self:
        if self.production and self.eks is not None:
            refuse_world_open_in_production("eks", {"publicAccessCidrs": self.eks.public_access_cidrs})
        if self.production and self.kops is not None:
            refuse_world_open_in_production(
                "kops", {"kubernetesApiAccess": self.kops.kubernetes_api_access, "sshAccess": self.kops.ssh_access}
            )
        return self

    @model_validator(mode="after")
    def _database_has_storage(self) -> Self:
        if self.database is not None and self.storage is None:
            raise ValueError(
                "scaleplane:database is set but scaleplane:storage is not: the database needs a "
                "snapshot-capable StorageClass and VolumeSnapshotClass"
            )
        return self

    @model_validator(mode="after")
    def _traffic_sections_match_choices(self) -> Self:
        for section, owner, wanted, required in (
            ("metallb", "balancer", "metallb", True),
            ("nlb", "balancer", "aws-nlb", True),
            ("istio", "mesh", "istio", False),
            ("linkerd", "mesh", "linkerd", False),
        ):
            chosen = getattr(self, owner)
            present = getattr(self, section) is not None
            if required and chosen == wanted and not present:
                raise ValueError(f"{owner} is '{wanted}' but {NAMESPACE}:{section} is not set")
            if present and chosen != wanted:
                raise ValueError(f"{NAMESPACE}:{section} is set but {owner} is '{chosen}'")
        return self

    @model_validator(mode="after")
    def _gateway_certificate_fits_balancer(self) -> Self:
        if self.istio is not None and self.istio.gateway.tls.certificate_arn is not None and self.balancer != "aws-nlb":
            raise ValueError(
                f"{NAMESPACE}:istio.gateway.tls.certificateArn is an ACM certificate for the AWS NLB, but balancer "
                f"is '{self.balancer}': use credentialName (a TLS Secret in the gateway namespace) instead"
            )
        return self

    @model_validator(mode="after")
    def _priority_classes_are_distinct(self) -> Self:
        todo, minio = self.todo.placement.priority_class, self.minio.placement.priority_class
        if todo is not None and minio is not None and self.minio.enabled and todo.name == minio.name:
            raise ValueError(
                f"todo.placement.priorityClass and minio.placement.priorityClass both create the "
                f"PriorityClass '{todo.name}': give them different names"
            )
        return self

    @model_validator(mode="after")
    def _production_opens_only_the_gateway(self) -> Self:
        if not self.production:
            return self
        for key, exposure in self.exposures():
            if self.scheme_of(exposure) == "internet-facing" and not exposure.source_ranges:
                raise ValueError(
                    f"{NAMESPACE}:{key} is internet-facing without sourceRanges: a production stack opens "
                    f"only the ingress gateway to the whole internet (set {key}.sourceRanges, or "
                    f"{key}.scheme: internal)"
                )
        return self

    def exposures(self) -> list[tuple[str, ExposureSettings]]:
        """Every LoadBalancer Service's exposure but the Istio gateway's, by its config key."""
        found = [("todo.exposure", self.todo.exposure)]
        if self.minio.enabled:
            found.append(("minio.exposure", self.minio.exposure))
        if self.mesh == "linkerd":
            found.append(("linkerd.exposure", self.linkerd_settings.exposure))
        return found

    def scheme_of(self, exposure: ExposureSettings) -> Scheme:
        """The scheme an exposure gets: its own, else the balancer's default (see ExposureSettings)."""
        if exposure.scheme is not None:
            return exposure.scheme
        if self.balancer == "aws-nlb" and self.nlb is not None:
            return self.nlb.scheme
        return "internal"

    @property
    def istio_settings(self) -> IstioSettings:
        """The istio section, or its defaults when the stack leaves it out."""
        return self.istio or IstioSettings()

    @property
    def linkerd_settings(self) -> LinkerdSettings:
        """The linkerd section, or its defaults when the stack leaves it out."""
        return self.linkerd or LinkerdSettings()


_ADAPTER = TypeAdapter(Settings)
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _alias(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_BY_ALIAS = {_alias(name): name for name in _FIELDS}


def _is_text(tp: Any) -> bool:
    """True when a config value of this type is taken verbatim rather than parsed as JSON."""
    origin = typing.get_origin(tp)
    if tp is str:
        return True
    if origin is Annotated:
        return _is_text(typing.get_args(tp)[0])
    if origin is Literal:
        return all(isinstance(arg, str) for arg in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return any(_is_text(arg) for arg in typing.get_args(tp) if arg is not type(None))
    return False


_HINTS = typing.get_type_hints(Settings, include_extras=True)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the object that holds `loc`'s last element."""
    tp: Any = Settings
    for part in loc[:-1]:
        tp = _unwrap(tp)
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            tp = hints.get(_BY_ALIAS_ANY(tp).get(part, part), None)
        elif typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        if tp is None:
            return []
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return sorted(_alias(f.name) for f in dataclasses.fields(tp))
    return []


def _BY_ALIAS_ANY(tp: Any) -> dict[str, str]:  # noqa: N802 - mirrors _BY_ALIAS for any dataclass
    return {_alias(f.name): f.name for f in dataclasses.fields(tp)}


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = _allowed_keys(loc)
        message = "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    elif error["type"] == "missing":
        message = "required key is missing"
    elif not error["type"].startswith("value_error") and isinstance(error.get("input"), (str, int, float, bool)):
        message += f" (got {shown(error['input'])})"
    if not loc:
        return f"{NAMESPACE}: {message}"
    return f"{key_path(str(loc[0]), loc[1:])}: {message}"


def from_config(
    raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset(), *, require_provider_guard: bool = False
) -> Settings:
    """Validate Pulumi's raw config map (namespace-qualified keys, string values) into Settings.

    Keys of the providers' namespaces (kubernetes:, aws:, pulumi:, ...) are left to them; any
    other namespace is refused as a likely typo of ours. With `require_provider_guard` (a whole
    stack's config, as `pulumi up` and the plan read it), pulumi:disable-default-providers must
    disable the default Kubernetes provider. Sections are then checked against each other
    (settings/checks.py: shared Namespaces and Services, StorageClasses, placement).
    Raises SettingsError naming every offending key; nothing is half-read.
    """
    problems: list[str] = checks.provider_guard_problems(raw) if require_provider_guard else []
    document: dict[str, Any] = {}
    for full_key, value in sorted(raw.items()):
        namespace, _, key = full_key.partition(":")
        if namespace not in PROVIDER_NAMESPACES and namespace != NAMESPACE:
            close = difflib.get_close_matches(namespace, [NAMESPACE, *PROVIDER_NAMESPACES], n=1)
            hint = f" (did you mean {close[0]}:{shown(key, quote=False)}?)" if close else ""
            unknown = shown(namespace, quote=False)
            problems.append(f"{shown(full_key, quote=False)}: unknown config namespace '{unknown}'{hint}")
            continue
        if namespace != NAMESPACE:
            continue
        if full_key in secret_keys:
            problems.append(f"{full_key}: is a secret; scaleplane generates its credentials and takes none from config")
            continue
        field = _BY_ALIAS.get(key)
        if field is None:
            allowed = ", ".join(sorted(_BY_ALIAS))
            problems.append(f"{shown(full_key, quote=False)}: unknown key; allowed keys: {allowed}")
            continue
        if not isinstance(value, str) or _is_text(_HINTS[field]):
            document[key] = value
            continue
        try:
            document[key] = json.loads(value)
        except json.JSONDecodeError:
            document[key] = value  # not JSON: the type check below names what was expected
    try:
        validated = _ADAPTER.validate_json(json.dumps(document))
    except ValidationError as error:
        problems.extend(_describe(e) for e in error.errors())
    else:
        problems.extend(checks.problems(validated))
    if problems:
        raise SettingsError(problems)
    return validated


def load() -> Settings:
    """Read this stack's configuration from the running Pulumi program.

    Invalid configuration ends `pulumi up` with the list of problems and no Python traceback
    (pulumi.RunError is the SDK's clean exit).
    """
    import pulumi
    from pulumi import RunError
    from pulumi.runtime import config as runtime_config

    raw: dict[str, str] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = frozenset(runtime_config.get_config_secret_keys_env()) | frozenset(
        runtime_config._SECRET_KEYS.get()  # noqa: SLF001 - the SDK exposes no public accessor
    )
    try:
        config = from_config(raw, secret, require_provider_guard=True)
    except SettingsError as error:
        raise RunError(str(error)) from None
    for warning in checks.warnings(config):
        pulumi.log.warn(warning)
    return config
