"""The balancer: MetalLB's chart and custom resources, NLB and cloud Services, and exported URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import crd_checked
from traffic_support import (
    KUBERNETES_VERSION,
    chart_values,
    depends_on,
    kinds,
    named,
    object_errors,
    run_on_cluster,
    schema_errors,
    unknown_value_paths,
)

import settings
from components.balancer import AWS_NLB_ANNOTATIONS, AWS_NLB_SCHEME, Balancer, Port, nlb_target_type
from components.balancer.metallb import MetalLB, MetalLBArgs
from deploy import mockrun
from deploy import validate as schema
from deploy.project import stack_config
from settings.traffic import ExposureSettings

#: Value paths set that the pinned values.yaml does not list, each with its reason. None so far:
#: every path we set is in the chart's values.yaml.
METALLB_ALLOWED: dict[str, str] = {}


def build_metallb(provider: Any, **overrides: Any) -> Balancer:
    args = MetalLBArgs(addresses=("172.18.255.200-172.18.255.250", "10.9.0.0/29"), **overrides)
    return Balancer.metallb(MetalLB("lb", args, provider))


def expose_minio(balancer: Balancer, provider: Any) -> None:
    import pulumi

    exposed = balancer.expose(
        "minio-service",
        namespace="minio",
        selector={"app": "minio"},
        port=9000,
        target_port=9000,
        parent=None,
        provider=provider,
    )
    pulumi.export("minioUrl", exposed.url)
    pulumi.export("minioHost", exposed.host)


@pytest.fixture(scope="module")
def metallb_plan() -> mockrun.PlanResult:
    return run_on_cluster(lambda provider: expose_minio(build_metallb(provider), provider))


def test_metallb_chart_is_pinned_into_a_privileged_namespace(metallb_plan: mockrun.PlanResult) -> None:
    chart = named(metallb_plan, "lb-chart")
    assert chart.type == "kubernetes:helm.sh/v3:Release"
    assert chart.inputs["chart"] == "metallb" and chart.inputs["version"] == "0.16.1"
    assert chart.inputs["repositoryOpts"]["repo"] == "https://metallb.github.io/metallb"
    assert chart.inputs["namespace"] == "metallb-system"
    namespace = named(metallb_plan, "lb-namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert depends_on(chart, namespace)


def test_metallb_values_exist_in_the_pinned_chart(metallb_plan: mockrun.PlanResult) -> None:
    values = named(metallb_plan, "lb-chart").inputs["values"]
    assert unknown_value_paths(values, "metallb", METALLB_ALLOWED) == []
    assert schema_errors(values, "metallb") == []
    # Requests so the policy pack's CPU-request rule can hold for MetalLB's pods as well.
    assert values["speaker"]["resources"]["requests"]["cpu"]
    assert values["controller"]["resources"]["requests"]["cpu"]
    assert chart_values("metallb")["frrk8s"]["enabled"] is True and values["frrk8s"]["enabled"] is False


def test_metallb_custom_resources_match_the_pinned_crds_and_wait_for_the_chart(
    metallb_plan: mockrun.PlanResult,
) -> None:
    chart = named(metallb_plan, "lb-chart")
    pool = named(metallb_plan, "lb-pool")
    advertisement = named(metallb_plan, "lb-l2-advertisement")
    for resource in (pool, advertisement):
        assert object_errors(resource) == [], resource.name
        assert depends_on(resource, chart), f"{resource.name} must wait for the chart's CRDs"
        assert resource.inputs["metadata"]["namespace"] == "metallb-system"
    assert pool.inputs["spec"]["addresses"] == ["172.18.255.200-172.18.255.250", "10.9.0.0/29"]
    assert advertisement.inputs["spec"]["ipAddressPools"] == [pool.inputs["metadata"]["name"]]


def test_metallb_namespace_denies_by_default_and_the_controller_reaches_only_the_api_server(
    metallb_plan: mockrun.PlanResult,
) -> None:
    values = named(metallb_plan, "lb-chart").inputs["values"]
    assert values["networkpolicies"] == {"enabled": True, "defaultDeny": True, "apiPort": 6443}
    assert chart_values("metallb")["networkpolicies"]["enabled"] is False, "the chart's default is off"
    with pytest.raises(ValueError, match="api_server_port"):
        run_on_cluster(
            lambda provider: MetalLB("lb", MetalLBArgs(addresses=("10.0.0.0/29",), api_server_port=0), provider)
        )


def test_metallb_custom_resources_wait_for_the_webhook_to_answer(metallb_plan: mockrun.PlanResult) -> None:
    """The Release's wait ends on a readiness ping; the pool and advertisement wait for a Job that
    dry-runs an L2Advertisement until the (fail-closed) webhook admits it."""
    chart = named(metallb_plan, "lb-chart")
    job = named(metallb_plan, "lb-webhook-ready-job")
    assert depends_on(job, chart)
    for resource in (named(metallb_plan, "lb-pool"), named(metallb_plan, "lb-l2-advertisement")):
        assert depends_on(resource, job), f"{resource.name} must wait for the webhook, not only the chart"
    assert job.inputs["metadata"]["namespace"] == "metallb-system"
    pod = job.inputs["spec"]["template"]
    assert pod["metadata"]["annotations"], "the chart version must be in the pod template (an upgrade waits again)"
    probes = named(metallb_plan, "lb-webhook-ready-probes").inputs["data"]
    (manifest,) = [json.loads(text) for key, text in probes.items() if key.endswith(".json")]
    assert manifest["kind"] == "L2Advertisement" and manifest["metadata"]["namespace"] == "metallb-system"
    probe = dict(manifest, metadata={**manifest["metadata"], "name": "probe"})
    assert crd_checked(lambda: list(schema.errors(probe, KUBERNETES_VERSION))) == []
    role = named(metallb_plan, "lb-webhook-ready-role").inputs
    assert role["rules"] == [{"apiGroups": ["metallb.io"], "resources": ["l2advertisements"], "verbs": ["create"]}]


def test_exposed_services_wait_for_the_pool(metallb_plan: mockrun.PlanResult) -> None:
    service = named(metallb_plan, "minio-service")
    assert depends_on(service, named(metallb_plan, "lb-pool"))
    assert depends_on(service, named(metallb_plan, "lb-l2-advertisement"))
    assert object_errors(service) == []
    spec = service.inputs["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"] == {"app": "minio"}
    assert spec["ports"] == [{"name": "http", "port": 9000.0, "targetPort": 9000.0, "protocol": "TCP"}]
    assert "loadBalancerClass" not in spec


def test_load_balancer_class_reaches_chart_and_services() -> None:
    plan = run_on_cluster(
        lambda provider: expose_minio(build_metallb(provider, load_balancer_class="metallb.io/metallb"), provider)
    )
    assert named(plan, "lb-chart").inputs["values"]["loadBalancerClass"] == "metallb.io/metallb"
    assert named(plan, "minio-service").inputs["spec"]["loadBalancerClass"] == "metallb.io/metallb"


def test_bad_ranges_are_refused_before_anything_is_created() -> None:
    with pytest.raises(ValueError, match="MetalLBArgs.addresses"):
        run_on_cluster(lambda provider: MetalLB("lb", MetalLBArgs(addresses=("10.0.0.5-10.0.0.1",)), provider))


@pytest.mark.parametrize("scheme", ["internet-facing", "internal"])
def test_nlb_services_are_annotated_for_the_aws_load_balancer_controller(scheme: str) -> None:
    plan = run_on_cluster(lambda provider: expose_minio(Balancer.aws_nlb(scheme), provider))  # type: ignore[arg-type]
    annotations = named(plan, "minio-service").inputs["metadata"]["annotations"]
    assert annotations == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": scheme,
    }
    assert set(AWS_NLB_ANNOTATIONS) <= set(annotations)
    assert named(plan, "minio-service").inputs["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"


def test_nlb_scheme_is_checked() -> None:
    with pytest.raises(ValueError, match="scheme must be internet-facing or internal"):
        Balancer.aws_nlb("public")  # type: ignore[arg-type]


def test_cloud_services_are_internal_load_balancers_by_default() -> None:
    plan = run_on_cluster(lambda provider: expose_minio(Balancer.cloud(), provider))
    service = named(plan, "minio-service")
    # The in-tree AWS controller would otherwise make an internet-facing balancer.
    assert service.inputs["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true"
    }
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert "loadBalancerSourceRanges" not in service.inputs["spec"]
    assert service.dependencies == []


def test_an_exposure_sets_the_scheme_and_source_ranges() -> None:
    open_to_office = ExposureSettings(scheme="internet-facing", source_ranges=("203.0.113.0/24",))
    cloud = Balancer.cloud()
    assert cloud.service_annotations(open_to_office) == {}
    assert cloud.service_spec({"app": "x"}, [Port("http", 80, 8080)], open_to_office)["loadBalancerSourceRanges"] == [
        "203.0.113.0/24"
    ]
    nlb = Balancer.aws_nlb("internet-facing")
    assert nlb.service_annotations(ExposureSettings(scheme="internal"))[AWS_NLB_SCHEME] == "internal"
    assert nlb.service_annotations()[AWS_NLB_SCHEME] == "internet-facing"
    # A balancer bound to an exposure applies it to Services exposed without their own.
    bound = nlb.exposed_as(ExposureSettings(source_ranges=("198.51.100.7/32",)))
    assert bound.service_spec({"app": "x"}, [Port("http", 80, 80)])["loadBalancerSourceRanges"] == ["198.51.100.7/32"]
    assert bound.scheme_for() == "internet-facing"


def test_service_annotations_are_a_fresh_copy() -> None:
    balancer = Balancer.aws_nlb("internal")
    balancer.service_annotations()["extra"] = "x"
    assert "extra" not in balancer.service_annotations()


def test_expose_refuses_an_empty_selector_and_clashing_ports() -> None:
    with pytest.raises(ValueError, match="selector must not be empty"):
        run_on_cluster(
            lambda provider: Balancer.cloud().expose(
                "x", namespace="n", selector={}, port=80, parent=None, provider=provider
            )
        )
    with pytest.raises(ValueError, match="unique"):
        run_on_cluster(
            lambda provider: Balancer.cloud().expose(
                "x",
                namespace="n",
                selector={"app": "x"},
                port=80,
                extra_ports=[Port("http", 81, 81)],
                parent=None,
                provider=provider,
            )
        )
    with pytest.raises(ValueError, match="Port.port"):
        Port("p", 0, 80)


def test_url_is_unknown_in_preview_never_invented() -> None:
    plan = run_on_cluster(lambda provider: expose_minio(Balancer.cloud(), provider), preview=True)
    assert plan.outputs["minioUrl"] == mockrun.UNKNOWN
    assert plan.outputs["minioHost"] == mockrun.UNKNOWN


@pytest.mark.parametrize(
    "ingress, url",
    [
        ({"hostname": "a1b2.elb.us-east-1.amazonaws.com"}, "http://a1b2.elb.us-east-1.amazonaws.com:9000"),
        ({"ip": "172.18.255.200"}, "http://172.18.255.200:9000"),
        # A MetalLB pool may be IPv6: the address is bracketed, or the port would read as part of it.
        ({"ip": "fd00:10::c8"}, "http://[fd00:10::c8]:9000"),
    ],
)
def test_url_is_built_from_what_the_provider_reports(
    monkeypatch: pytest.MonkeyPatch, ingress: dict[str, str], url: str
) -> None:
    def status(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("spec", {}).get("type") != "LoadBalancer":
            return {}
        return {"status": {"loadBalancer": {"ingress": [ingress]}}}

    monkeypatch.setitem(mockrun.MOCK_OUTPUTS, "kubernetes:core/v1:Service", status)
    plan = run_on_cluster(lambda provider: expose_minio(Balancer.cloud(), provider))
    assert plan.outputs["minioUrl"] == url
    assert plan.outputs["minioHost"] == next(iter(ingress.values()))


def test_no_address_yet_means_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        mockrun.MOCK_OUTPUTS, "kubernetes:core/v1:Service", lambda name, inputs: {"status": {"loadBalancer": {}}}
    )
    plan = run_on_cluster(lambda provider: expose_minio(Balancer.cloud(), provider))
    assert plan.outputs["minioUrl"] is None


def test_only_metallb_objects_are_custom_resources(metallb_plan: mockrun.PlanResult) -> None:
    custom = {r.inputs["kind"] for r in metallb_plan.resources if r.type.startswith("kubernetes:metallb.io")}
    assert custom == {"IPAddressPool", "L2Advertisement"}
    assert len(kinds(metallb_plan, "Service")) == 1


@pytest.mark.parametrize(
    "cluster, networking, target_type",
    [("eks", None, "ip"), ("kops", "amazonvpc", "ip"), ("kops", "cilium", "instance"), ("kops", "calico", "instance")],
)
def test_nlb_targets_pods_only_where_pod_ips_are_vpc_addresses(
    cluster: str, networking: str | None, target_type: str
) -> None:
    """An NLB registers pod IPs only if they are VPC addresses; an overlay network needs instance targets."""
    raw = dict(stack_config("prod" if cluster == "eks" else "dev"))
    raw["scaleplane:balancer"] = "aws-nlb"
    raw["scaleplane:nlb"] = json.dumps({"scheme": "internal"})
    if networking is not None:
        kops = json.loads(raw["scaleplane:kops"])
        raw["scaleplane:kops"] = json.dumps({**kops, "networking": networking})
    config = settings.from_config(raw)
    assert nlb_target_type(config) == target_type
    annotations = Balancer.aws_nlb("internal", target_type=nlb_target_type(config)).service_annotations()
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == target_type
    with pytest.raises(ValueError, match="target_type must be ip or instance"):
        Balancer.aws_nlb("internal", target_type="pod")  # type: ignore[arg-type]
