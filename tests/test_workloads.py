"""The foundation workloads: to-do app with MongoDB, HPA and PDB, MinIO, Metrics Server, load test."""

from __future__ import annotations

from typing import Any

import pytest
from support import chart_version, objects, one, run_component, unknown_value_paths

from components.autoscaling import hpa_spec
from components.balancer import AWS_NLB_SCHEME, Balancer
from components.loadtest import LoadTest, LoadTestArgs
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.minio import Minio, MinioArgs, server_args
from components.todo import TodoApp, TodoAppArgs
from deploy import mockrun
from settings.base import parse
from settings.workloads import AutoscalingSettings, LoadTestSettings, MinioSettings, TodoSettings

NLB_CLASS = "service.k8s.aws/nlb"


def todo_app(settings: dict[str, Any] | None = None, **args: Any) -> mockrun.PlanResult:
    todo = parse(TodoSettings, settings or {})
    return run_component(
        lambda provider: TodoApp("t", TodoAppArgs(settings=todo, environment="test", **args), provider)
    )


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# --- to-do application ---------------------------------------------------------------------------


def test_web_deployment_is_probed_sized_and_never_drops_below_desired() -> None:
    result = todo_app({"name": "todo-dev", "replicas": 1})
    web = next(o for o in objects(result, "Deployment") if o["metadata"]["name"] == "todo-dev")
    (container,) = containers(web)
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert ":" in container["image"] and not container["image"].endswith(":latest")
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert web["spec"]["selector"]["matchLabels"] == {"app": "todo-dev"}
    assert web["spec"]["template"]["metadata"]["labels"]["app"] == "todo-dev"


def test_hpa_is_autoscaling_v2_with_the_playbooks_defaults() -> None:
    result = todo_app({"name": "todo-dev"})
    hpa = one(result, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert "targetCPUUtilizationPercentage" not in spec
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "todo-dev"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 5)
    assert spec["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
    ]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_a_meshed_hpa_measures_the_web_container_alone() -> None:
    """A mesh proxy beside the app (Linkerd's requests no CPU) must not break or skew the HPA."""
    result = todo_app({"name": "todo-dev", "autoscaling": {"targetMemoryUtilization": 80}}, meshed=True)
    metrics = one(result, "HorizontalPodAutoscaler")["spec"]["metrics"]
    web = one(result, "Deployment")
    (container,) = containers(web)
    assert metrics == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": resource,
                "container": container["name"],
                "target": {"type": "Utilization", "averageUtilization": percent},
            },
        }
        for resource, percent in (("cpu", 50), ("memory", 80))
    ]


@pytest.mark.parametrize("stack", ["local", "prod"])
def test_every_meshed_stack_scales_on_the_web_container(stack: str, stack_plans: dict[str, mockrun.PlanResult]) -> None:
    (hpa,) = (
        r.inputs
        for r in stack_plans[stack].resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "HorizontalPodAutoscaler"
        and r.name.endswith("-todo-autoscaler-hpa")
    )
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"ContainerResource"}


def test_hpa_memory_target_and_behavior_are_configurable() -> None:
    scaling = parse(
        AutoscalingSettings,
        {
            "targetMemoryUtilization": 70,
            "scaleUp": {"stabilizationWindowSeconds": 30, "percent": 50, "pods": 2, "periodSeconds": 60},
        },
    )
    spec = hpa_spec("Deployment", "web", scaling)
    memory = spec["metrics"][1]["resource"]
    assert memory == {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 70}}
    assert spec["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 30,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 60},
            {"type": "Pods", "value": 2, "periodSeconds": 60},
        ],
    }


def test_hpa_owns_replicas_once_enabled() -> None:
    result = todo_app({"name": "todo-dev"})
    web = next(r for r in result.resources if r.type == "kubernetes:apps/v1:Deployment")
    assert web.ignore_changes == ["spec.replicas"]
    manual = todo_app({"name": "todo-dev", "replicas": 3, "autoscaling": {"enabled": False}})
    web = next(r for r in manual.resources if r.type == "kubernetes:apps/v1:Deployment")
    assert web.ignore_changes == []
    assert web.inputs["spec"]["replicas"] == 3
    # The HPA that ran before left kube-controller-manager owning spec.replicas: take it back.
    assert web.inputs["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    scaled = next(r for r in todo_app({"name": "todo-dev"}).resources if r.type == "kubernetes:apps/v1:Deployment")
    assert "annotations" not in scaled.inputs["metadata"]
    assert objects(manual, "HorizontalPodAutoscaler") == []


@pytest.mark.parametrize(
    ("settings", "expect_pdb"),
    [
        ({"replicas": 1, "autoscaling": {"enabled": False}}, False),
        ({"replicas": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 1}}, False),
        ({"replicas": 2, "autoscaling": {"enabled": False}}, True),
        ({"replicas": 1}, True),  # the HPA may scale it to 5
    ],
)
def test_pdb_whenever_replicas_can_exceed_one(settings: dict[str, Any], expect_pdb: bool) -> None:
    pdbs = objects(todo_app({"name": "todo-dev", **settings}), "PodDisruptionBudget")
    assert bool(pdbs) is expect_pdb
    if expect_pdb:
        assert pdbs[0]["spec"]["maxUnavailable"] == 1
        assert pdbs[0]["spec"]["selector"] == {"matchLabels": {"app": "todo-dev"}}


def test_replicas_outside_the_autoscaling_range_are_refused() -> None:
    with pytest.raises(ValueError, match="replicas \\(7\\) must lie within the autoscaling range 1..5"):
        todo_app({"replicas": 7})


def test_mongodb_is_stateful_with_generated_secret_credentials() -> None:
    result = todo_app()
    mongo = next(o for o in objects(result, "StatefulSet") if o["metadata"]["name"] == "mongodb")
    assert mongo["spec"]["template"]["metadata"]["labels"]["app"] == "mongodb"
    assert mongo["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # mongo:7 runs as its mongodb user (999), which must be able to write the volume.
    pod_security = mongo["spec"]["template"]["spec"]["securityContext"]
    assert (pod_security["runAsUser"], pod_security["fsGroup"]) == (999, 999)
    assert pod_security["fsGroupChangePolicy"] == "OnRootMismatch"
    assert containers(mongo)[0]["livenessProbe"]["exec"]["command"][0] == "mongosh"  # mongo >= 6 has no `mongo`
    (claim,) = mongo["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    env = {e["name"]: e for e in containers(mongo)[0]["env"]}
    assert "value" not in env["MONGO_INITDB_ROOT_PASSWORD"]
    assert env["MONGO_INITDB_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mongodb-credentials"
    secret = next(r for r in result.resources if r.type == "kubernetes:core/v1:Secret")
    assert secret.secret_paths and all(p.startswith("stringData") for p in secret.secret_paths)
    password = next(r for r in result.resources if r.type == "random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32


def test_mongodb_runs_on_the_apps_nodes_without_its_pod_rules(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    """todo-prod must share MongoDB's zone and run on production nodes: MongoDB (and its volume)
    must therefore be on production nodes too, or the web pods could never be scheduled."""
    prod = stack_plans["prod"]
    (mongo,) = (r.inputs for r in prod.resources if r.name == "prod-todo-mongodb")
    affinity = mongo["spec"]["template"]["spec"]["affinity"]
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "environment", "operator": "In", "values": ["production"]}]}
        ]
    }
    assert set(affinity) == {"nodeAffinity"}
    dev = next(r.inputs for r in stack_plans["dev"].resources if r.name == "dev-todo-mongodb")
    assert dev["spec"]["template"]["spec"]["nodeSelector"] == {"environment": "development"}


def test_web_env_never_holds_a_literal_secret() -> None:
    web = next(o for o in objects(todo_app(), "Deployment"))
    env = {variable["name"]: variable for variable in containers(web)[0]["env"]}
    for name in ("MONGODB_URI", "MONGO_URL", "DATABASE_PASSWORD", "DATABASE_USER"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == "mongodb-credentials"


def test_web_service_takes_the_balancers_annotations() -> None:
    balancer = Balancer(kind="aws-nlb", annotations={AWS_NLB_SCHEME: "internet-facing"}, load_balancer_class=NLB_CLASS)
    result = todo_app({"name": "todo-prod", "port": 8080}, balancer=balancer)
    service = next(o for o in objects(result, "Service") if o["metadata"]["name"] == "todo-prod")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {AWS_NLB_SCHEME: "internet-facing"}
    assert service["spec"]["loadBalancerClass"] == NLB_CLASS
    assert service["spec"]["selector"] == {"app": "todo-prod"}
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("ingress", "url"),
    [
        ({"hostname": "abc.elb.us-east-1.amazonaws.com"}, "http://abc.elb.us-east-1.amazonaws.com:80"),
        ({"ip": "172.18.255.200"}, "http://172.18.255.200:80"),
    ],
)
def test_url_comes_from_whatever_the_balancer_reports(ingress: dict[str, str], url: str) -> None:
    def with_status(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs.get("spec", {}).get("type") == "LoadBalancer":
            return {"status": {"loadBalancer": {"ingress": [ingress]}}}
        return {}

    mockrun.MOCK_OUTPUTS["kubernetes:core/v1:Service"] = with_status
    try:
        result = run_component(
            lambda p: TodoApp("t", TodoAppArgs(settings=parse(TodoSettings, {}), environment="t"), p).url
        )
    finally:
        del mockrun.MOCK_OUTPUTS["kubernetes:core/v1:Service"]
    assert result.outputs["component"] == url


def test_url_is_unknown_in_preview_never_invented() -> None:
    result = run_component(
        lambda p: TodoApp("t", TodoAppArgs(settings=parse(TodoSettings, {}), environment="t"), p).url, preview=True
    )
    assert result.outputs["component"] == mockrun.UNKNOWN


@pytest.mark.parametrize("build", ["todo", "minio"])
def test_priority_class_is_created_before_the_pods_that_use_it(build: str) -> None:
    placement = {"placement": {"priorityClass": {"name": "apps-high", "value": 1000}}}
    result = todo_app(placement) if build == "todo" else minio(placement)
    (priority,) = result.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    assert priority.inputs["value"] == 1000 and priority.inputs["globalDefault"] is False
    kind = "Deployment" if build == "todo" else "StatefulSet"
    (workload,) = [r for r in result.resources if r.is_kubernetes_object and r.inputs["kind"] == kind]
    assert workload.inputs["spec"]["template"]["spec"]["priorityClassName"] == "apps-high"
    # The priority admission plugin refuses pods whose class does not exist yet.
    assert priority.urn in workload.dependencies


# --- MinIO ----------------------------------------------------------------------------------------


def minio(settings: dict[str, Any] | None = None) -> mockrun.PlanResult:
    spec = parse(MinioSettings, settings or {})
    return run_component(lambda p: Minio("m", MinioArgs(settings=spec, environment="test"), p))


def test_minio_probes_follow_the_playbook() -> None:
    statefulset = one(minio(), "StatefulSet")
    (container,) = containers(statefulset)
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/minio/health/live", "port": 9000, "scheme": "HTTP"},
        "initialDelaySeconds": 120,
        "periodSeconds": 20,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["envFrom"] == [{"secretRef": {"name": "minio-credentials"}}]


def test_minio_runs_four_pods_distributed_with_their_own_volumes() -> None:
    result = minio({"replicas": 4})
    statefulset = one(result, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 4
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["serviceName"] == "minio-headless"
    assert containers(statefulset)[0]["args"][1] == "http://minio-{0...3}.minio-headless.minio.svc.cluster.local/data"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    services = {s["metadata"]["name"]: s for s in objects(result, "Service")}
    assert services["minio-headless"]["spec"]["clusterIP"] == "None"
    assert services["minio"]["spec"]["ports"][0]["port"] == 9000
    assert services["minio"]["spec"]["selector"] == {"app": "minio"}
    assert one(result, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_single_minio_serves_a_local_drive_without_a_pdb() -> None:
    result = minio({"replicas": 1})
    assert server_args(1, "minio")[1] == "/data"
    assert objects(result, "PodDisruptionBudget") == []


def test_minio_credentials_are_generated_and_secret() -> None:
    result = minio()
    secret = next(r for r in result.resources if r.type == "kubernetes:core/v1:Secret")
    assert secret.secret_paths and all(p.startswith("stringData") for p in secret.secret_paths)
    generated = [r for r in result.resources if r.type == "random:index/randomPassword:RandomPassword"]
    assert len(generated) == 2


# --- Metrics Server ---------------------------------------------------------------------------------


@pytest.mark.parametrize("insecure", [False, True])
def test_metrics_server_values_exist_in_the_pinned_chart(insecure: bool) -> None:
    args = MetricsServerArgs(chart_version=chart_version("metrics-server"), replicas=2, kubelet_insecure_tls=insecure)
    assert unknown_value_paths(args.values(), "metrics-server") == []
    result = run_component(lambda p: MetricsServer("ms", args, p))
    chart = next(r for r in result.resources if r.type == "kubernetes:helm.sh/v4:Chart")
    assert chart.inputs["version"] == "3.13.1"
    assert chart.inputs["repositoryOpts"]["repo"] == "https://kubernetes-sigs.github.io/metrics-server/"
    assert ("--kubelet-insecure-tls" in chart.inputs["values"]["args"]) is insecure
    assert chart.inputs["values"]["podDisruptionBudget"]["enabled"] is True


def test_only_the_local_stack_skips_kubelet_tls_verification(stack_plan: mockrun.PlanResult) -> None:
    chart = next(r for r in stack_plan.resources if r.type == "kubernetes:helm.sh/v4:Chart" and "metrics" in r.name)
    assert ("--kubelet-insecure-tls" in chart.inputs["values"]["args"]) is (stack_plan.stack == "local")


# --- load test ------------------------------------------------------------------------------------


def test_load_test_is_bounded_in_requests_and_time() -> None:
    load = parse(LoadTestSettings, {"enabled": True, "requests": 1000, "durationSeconds": 120, "workers": 2})
    result = run_component(
        lambda p: LoadTest("lt", LoadTestArgs(settings=load, target_url="http://todo-dev.todo/", namespace="todo"), p)
    )
    job = one(result, "Job")
    assert job["spec"]["activeDeadlineSeconds"] == 120
    assert job["spec"]["backoffLimit"] == 0
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (2, 2)
    (container,) = containers(job)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"TARGET": "http://todo-dev.todo/", "REQUESTS": "1000"}
    assert "wget" in container["command"][-1] and '"$REQUESTS"' in container["command"][-1]
    assert container["resources"]["requests"]["cpu"]
    # Meshed, its proxy a native sidecar the kubelet stops when the workers exit (the Job completes).
    template = job["spec"]["template"]["metadata"]
    assert "sidecar.istio.io/inject" not in template["labels"]
    assert "linkerd.io/inject" not in template["annotations"]
    assert template["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert template["annotations"]["config.linkerd.io/proxy-enable-native-sidecar"] == "true"


def test_load_test_is_off_by_default(stack_plan: mockrun.PlanResult) -> None:
    assert not [r for r in stack_plan.resources if r.type == "kubernetes:batch/v1:Job" and "load-test" in r.name]


@pytest.mark.parametrize("build", ["todo", "minio"])
def test_namespaces_holding_volumes_survive_destroy(build: str) -> None:
    result = todo_app() if build == "todo" else minio()
    (namespace,) = [r for r in result.resources if r.type == "kubernetes:core/v1:Namespace"]
    assert namespace.retain_on_delete is True


@pytest.mark.parametrize("build", ["todo", "minio"])
def test_credentials_of_retained_volumes_survive_destroy(build: str) -> None:
    # The volumes outlive `pulumi destroy`; without the credentials their data cannot be logged into.
    result = todo_app() if build == "todo" else minio()
    (secret,) = [r for r in result.resources if r.type == "kubernetes:core/v1:Secret"]
    assert secret.retain_on_delete is True
