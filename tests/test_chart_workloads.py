"""Chart workload declarations: what each chart runs, checked against the pinned charts and by the
offline plan's policy run (which otherwise cannot see inside a helm.v3.Release)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import chart_defaults

import settings
from components import chart_workloads, metrics_server
from components.balancer import metallb
from components.balancer.metallb import MetalLB, MetalLBArgs
from components.chart_workloads import (
    CHART_TYPES,
    DECLARED_POLICIES,
    ChartContainer,
    ChartRelease,
    ChartWorkload,
    chart_objects,
    declares,
    fullname,
    http_probe,
)
from components.ingress import traefik
from components.mesh import linkerd
from components.metrics_server import MetricsServerArgs
from components.storage import ZFS_CONTROLLER_CONTAINERS, ZFS_NODE_CONTAINERS, zfs_localpv_values
from deploy import mockrun
from deploy import plan as offline_plan
from deploy.project import stack_config
from policy.scaleplane_policy import evaluate


def release(chart: str, name: str, values: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    return {
        "type": "kubernetes:helm.sh/v3:Release",
        "name": f"{name}-release",
        "urn": f"urn:pulumi:test::scaleplane::kubernetes:helm.sh/v3:Release::{name}-release",
        "props": {"chart": chart, "name": name, "namespace": namespace, "values": values},
    }


def containers(objects: list[dict[str, Any]], name: str, key: str = "containers") -> dict[str, dict[str, Any]]:
    (obj,) = [o for o in objects if o["props"]["metadata"]["name"] == name]
    return {c["name"]: c for c in obj["props"]["spec"]["template"]["spec"][key]}


def stack_chart(result: mockrun.PlanResult, chart: str) -> dict[str, Any]:
    """The stack's Helm resource of `chart`, in the shape chart_objects takes."""
    (resource,) = [r for r in result.resources if r.type in CHART_TYPES and r.inputs.get("chart") == chart]
    return {"type": resource.type, "name": resource.name, "urn": resource.urn, "props": resource.inputs}


def with_values(resource: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {**resource, "props": {**resource["props"], "values": {**resource["props"]["values"], **values}}}


def mandatory(objects: list[dict[str, Any]], stack: str) -> list[Any]:
    config = json.loads((offline_plan.POLICY_CONFIG_DIR / f"{stack}.json").read_text())
    found = evaluate([], config, declared=objects, declared_policies=DECLARED_POLICIES)
    return [v for v in found if v.enforcement == "mandatory"]


# --- declarations against the pinned charts ----------------------------------------------------


@pytest.mark.parametrize("component", ["controller", "speaker"])
@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_metallb_probe_defaults_are_the_pinned_charts(component: str, probe: str) -> None:
    assert chart_defaults("metallb")[component][probe] == metallb.CHART_PROBE_DEFAULTS


def test_metallb_declares_the_resources_its_values_give_and_the_charts_probes() -> None:
    values = MetalLB.chart_values(MetalLBArgs(addresses=("10.0.0.0/29",)))
    objects = chart_objects([release("metallb", "metallb", values)]).objects
    assert [o["props"]["metadata"]["name"] for o in objects] == ["metallb-controller", "metallb-speaker"]
    assert [o["type"] for o in objects] == ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet"]
    controller = containers(objects, "metallb-controller")["controller"]
    assert controller["resources"] == values["controller"]["resources"]
    assert controller["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 17472}
    assert controller["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 17472}
    assert containers(objects, "metallb-speaker")["speaker"]["resources"] == values["speaker"]["resources"]
    # A probe the values switch off is not declared.
    off = {**values, "speaker": {**values["speaker"], "livenessProbe": {"enabled": False}}}
    speaker = containers(chart_objects([release("metallb", "metallb", off)]).objects, "metallb-speaker")["speaker"]
    assert "livenessProbe" not in speaker and "readinessProbe" in speaker
    with pytest.raises(ValueError, match="layer 2 only"):
        chart_objects([release("metallb", "metallb", {"speaker": {"frr": {"enabled": True}}})])


def test_metrics_server_defaults_are_the_pinned_charts() -> None:
    pinned = chart_defaults("metrics-server")
    for key, value in metrics_server.CHART_DEFAULTS.items():
        assert pinned[key] == value, key
    assert pinned["addonResizer"]["enabled"] is False


def test_metrics_server_declares_one_deployment_named_after_the_release() -> None:
    values = MetricsServerArgs(chart_version="3.13.1").values()
    objects = chart_objects([release("metrics-server", "local-metrics-server-chart", values)]).objects
    (container,) = containers(objects, "local-metrics-server-chart").values()
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "200Mi"}}
    assert container["ports"] == [{"name": "https", "containerPort": 10250}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_zfs_localpv_container_names_are_the_pinned_charts() -> None:
    pinned = chart_defaults("zfs-localpv")
    controller = pinned["zfsController"]
    assert ZFS_CONTROLLER_CONTAINERS == (
        controller["resizer"]["name"],
        controller["snapshotter"]["name"],
        controller["snapshotController"]["name"],
        controller["provisioner"]["name"],
        pinned["zfsPlugin"]["name"],
    )
    assert ZFS_NODE_CONTAINERS == (pinned["zfsNode"]["driverRegistrar"]["name"], pinned["zfsPlugin"]["name"])


def test_zfs_localpv_values_set_no_resources_no_template_reads() -> None:
    raw = dict(stack_config("local"))
    raw["scaleplane:storage"] = json.dumps({"driver": "zfs-localpv", "zfsLocalPv": {"kubeletDir": "/var/snap/k/"}})
    values = zfs_localpv_values(settings.from_config(raw).storage)
    assert "resources" not in values.get("zfsController", {})
    assert values["zfsNode"] == {"kubeletDir": "/var/snap/k/"}, "only what templates/zfs-node.yaml reads"
    objects = chart_objects([release("zfs-localpv", "zfs-localpv", values, "openebs")]).objects
    assert [o["props"]["metadata"]["name"] for o in objects] == ["zfs-localpv-controller", "zfs-localpv-node"]
    assert all("resources" not in c for c in containers(objects, "zfs-localpv-node").values())


def test_fullname_follows_helms_convention() -> None:
    assert fullname(ChartRelease("metallb", {}), "metallb") == "metallb"
    assert fullname(ChartRelease("lb", {}), "metallb") == "lb-metallb"
    assert fullname(ChartRelease("lb", {"fullnameOverride": "x-"}), "metallb") == "x"


CONTROLLER_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
PROXY_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}


def test_linkerd_proxy_and_controller_defaults_are_the_pinned_charts() -> None:
    pinned = chart_defaults("linkerd-control-plane")
    for key, value in linkerd.PROXY_CHART_DEFAULTS.items():
        expected = {k: pinned["proxy"][key][k] for k in value} if isinstance(value, dict) else pinned["proxy"][key]
        assert expected == value, key
    for section in ("destinationController", "spValidator", "policyController", "identity", "proxyInjector"):
        for probe in ("livenessProbe", "readinessProbe"):
            assert pinned[section][probe] == {"timeoutSeconds": linkerd.CONTROLLER_PROBE_TIMEOUT}, section
    assert pinned["disableHeartBeat"] is False
    viz = chart_defaults("linkerd-viz")
    assert viz["prometheus"]["enabled"] is True
    for key, *_ in (*linkerd.VIZ_CONTAINERS, ("prometheus",)):
        assert viz[key]["proxy"] is None, f"{key}: no proxy override by default"


def test_linkerd_control_plane_declares_each_controller_with_its_proxy(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    chart = stack_chart(stack_plans["local"], "linkerd-control-plane")
    objects = chart_objects([chart]).objects
    assert [(o["type"].rsplit(":", 1)[1], o["props"]["metadata"]["name"]) for o in objects] == [
        ("Deployment", "linkerd-destination"),
        ("Deployment", "linkerd-identity"),
        ("Deployment", "linkerd-proxy-injector"),
        ("CronJob", "linkerd-heartbeat"),
    ]
    destination = containers(objects, "linkerd-destination")
    assert list(destination) == ["destination", "sp-validator", "policy"]
    assert all(c["resources"] == CONTROLLER_RESOURCES for c in destination.values())
    assert destination["policy"]["livenessProbe"]["httpGet"] == {"path": "/live", "port": "policy-admin"}
    assert {"name": "policy-admin", "containerPort": 9990} in destination["policy"]["ports"]
    assert destination["destination"]["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 9996},
        "failureThreshold": 7,
        "timeoutSeconds": 1,
    }
    # cniEnabled: the network validator, then the proxy as a native sidecar awaiting readiness.
    init = containers(objects, "linkerd-destination", "initContainers")
    assert list(init) == ["linkerd-network-validator", "linkerd-proxy"]
    proxy = init["linkerd-proxy"]
    assert proxy["restartPolicy"] == "Always" and "restartPolicy" not in init["linkerd-network-validator"]
    assert proxy["resources"] == init["linkerd-network-validator"]["resources"] == PROXY_RESOURCES
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/live", "port": 4191}
    assert proxy["startupProbe"] == {
        "httpGet": {"path": "/ready", "port": 4191},
        "initialDelaySeconds": 0,
        "periodSeconds": 1,
        "failureThreshold": 120,
    }
    # identity.yaml turns nativeSidecar off: its proxy is a regular container, with no startup probe.
    identity = containers(objects, "linkerd-identity")
    assert list(identity) == ["identity", "linkerd-proxy"]
    assert "startupProbe" not in identity["linkerd-proxy"] and "restartPolicy" not in identity["linkerd-proxy"]
    assert list(containers(objects, "linkerd-identity", "initContainers")) == ["linkerd-network-validator"]
    heartbeat = objects[-1]["props"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert heartbeat == [{"name": "heartbeat", "resources": CONTROLLER_RESOURCES}]
    assert mandatory(objects, "local") == []
    # A pod's own proxy resources win over proxy.resources, key by key.
    more = with_values(chart, destinationProxyResources={"cpu": {"request": "200m"}}, disableHeartBeat=True)
    objects = chart_objects([more]).objects
    assert "linkerd-heartbeat" not in {o["props"]["metadata"]["name"] for o in objects}
    proxy = containers(objects, "linkerd-destination", "initContainers")["linkerd-proxy"]
    assert proxy["resources"] == {"requests": {"cpu": "200m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}
    with pytest.raises(ValueError, match="cniEnabled"):
        chart_objects([with_values(chart, cniEnabled=False)])


def test_linkerd_viz_declares_each_component_with_the_injected_proxy(
    stack_plans: dict[str, mockrun.PlanResult],
) -> None:
    result = stack_plans["local"]
    chart = stack_chart(result, "linkerd-viz")
    objects = chart_objects([chart]).objects
    names = ["metrics-api", "tap", "tap-injector", "web", "prometheus"]
    assert [o["props"]["metadata"]["name"] for o in objects] == names
    # The injector gives each pod the control plane's proxy (the one its own pods run).
    plane = chart_objects([stack_chart(result, "linkerd-control-plane")]).objects
    control_plane_proxy = containers(plane, "linkerd-destination", "initContainers")
    for name in names:
        (app,) = containers(objects, name).values()
        assert app["name"] == name
        assert {"livenessProbe", "readinessProbe"} <= set(app)
        assert containers(objects, name, "initContainers") == control_plane_proxy
    assert containers(objects, "web")["web"]["resources"] == CONTROLLER_RESOURCES
    prometheus = containers(objects, "prometheus")["prometheus"]
    assert prometheus["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    assert prometheus["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": 9090}
    assert mandatory(objects, "local") == []
    override = with_values(
        chart, tap={"proxy": {"resources": {"memory": {"limit": "512Mi"}}}}, prometheus={"enabled": False}
    )
    objects = chart_objects([override]).objects
    assert "prometheus" not in {o["props"]["metadata"]["name"] for o in objects}
    proxy = containers(objects, "tap", "initContainers")["linkerd-proxy"]
    assert proxy["resources"] == {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "512Mi"}}
    assert "resources" not in containers(objects, "tap")["tap"], "tap.resources replaced, not merged"


def test_a_native_sidecar_is_judged_like_a_container() -> None:
    probed = ChartContainer("main", liveness_probe=http_probe("/", 80), readiness_probe=http_probe("/", 80))
    pod = [ChartContainer("setup", init=True), ChartContainer("proxy", sidecar=True), probed]
    props = ChartWorkload("Deployment", "x", pod).props("ns")
    assert [c["name"] for c in props["spec"]["template"]["spec"]["initContainers"]] == ["setup", "proxy"]
    assert [c["name"] for c in props["spec"]["template"]["spec"]["containers"]] == ["main"]
    declared = [{"type": "kubernetes:apps/v1:Deployment", "name": "x", "urn": "urn:x", "props": props}]
    found = evaluate([], {"all": "mandatory"}, declared=declared, declared_policies=["workload-probes"])
    assert any('sidecar "proxy" has no livenessProbe' in v.message for v in found)
    assert not [v for v in found if '"setup"' in v.message or '"main"' in v.message], [v.message for v in found]


def test_traefik_defaults_are_the_pinned_charts() -> None:
    pinned = chart_defaults("traefik")
    for key, value in traefik.CHART_PROBE_DEFAULTS.items():
        assert pinned[key] == value, key
    assert pinned["ports"]["traefik"]["port"] == traefik.CHART_HEALTH_PORT
    assert pinned["startupProbe"] == {} and pinned["deployment"]["kind"] == "Deployment"


def test_traefik_declares_one_container_named_after_the_release(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    chart = stack_chart(stack_plans["local"], "traefik")
    objects = chart_objects([chart]).objects
    (container,) = containers(objects, "traefik").values()
    assert container["name"] == "traefik"
    assert container["resources"] == chart["props"]["values"]["resources"]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ping", "port": 8080, "scheme": "HTTP"},
        **traefik.CHART_PROBE_DEFAULTS["readinessProbe"],
    }
    assert "startupProbe" not in container
    assert mandatory(objects, "local") == []
    with pytest.raises(ValueError, match="additionalContainers"):
        chart_objects([with_values(chart, deployment={"additionalContainers": [{"name": "x"}]})])


# --- the policy run over declarations ------------------------------------------------------------


def test_declared_workloads_are_judged_by_the_declared_policies_and_exemptions() -> None:
    undeclared = chart_objects([release("zfs-localpv", "zfs-localpv", {}, "openebs")]).objects
    strict = evaluate([], {"all": "mandatory"}, declared=undeclared, declared_policies=DECLARED_POLICIES)
    messages = {v.policy for v in strict}
    assert messages == {"workload-probes", "cpu-requests", "memory-requests-limits"}
    assert any('container "csi-provisioner" has no livenessProbe' in v.message for v in strict)
    # No image is declared: image-tags (not a declared policy) must not judge declarations.
    assert not [v for v in strict if v.policy == "image-tags"]
    local = json.loads((offline_plan.POLICY_CONFIG_DIR / "local.json").read_text())
    assert evaluate([], local, declared=undeclared, declared_policies=DECLARED_POLICIES) == []
    with pytest.raises(ValueError, match="names no policy"):
        evaluate([], {}, declared=undeclared, declared_policies=["no-such-policy"])


def test_a_v4_chart_without_a_release_name_uses_its_pulumi_name() -> None:
    @declares("test-chart-v4")
    def declared(release: ChartRelease) -> list[ChartWorkload]:
        return [ChartWorkload("StatefulSet", release.name, [ChartContainer("c")])]

    chart = {
        "type": "kubernetes:helm.sh/v4:Chart",
        "name": "the-chart",
        "urn": "urn:x",
        "props": {"chart": "test-chart-v4", "values": {}},
    }
    (obj,) = chart_objects([chart]).objects
    assert obj["props"]["metadata"] == {"name": "the-chart", "namespace": "default"}
    assert obj["type"] == "kubernetes:apps/v1:StatefulSet"
    with pytest.raises(ValueError, match="already has a workload declaration"):
        declares("test-chart-v4")(lambda release: [])
    chart_workloads._DECLARATIONS.pop("test-chart-v4")


def test_the_offline_plan_checks_chart_workloads(
    stack_plans: dict[str, mockrun.PlanResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = stack_plans["local"]
    config = settings.from_config(stack_config("local"))
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in result.resources]
    names = {o["props"]["metadata"]["name"] for o in chart_objects(resources).objects}
    assert {"metallb-controller", "metallb-speaker", "local-metrics-server-chart"} <= names
    # A chart whose declared container has no probe and no request: the plan's policy run reports it.
    monkeypatch.setitem(
        chart_workloads._DECLARATIONS,
        "metallb",
        lambda release: [ChartWorkload("Deployment", "metallb-controller", [ChartContainer("controller")])],
    )
    found = [v for v in offline_plan.run_policies(result, config) if "metallb-controller" in v.message]
    assert {v.policy for v in found if v.enforcement == "mandatory"} == {"workload-probes", "cpu-requests"}


def test_every_chart_the_stacks_install_is_declared(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    for stack, result in stack_plans.items():
        uncovered = {entry.rsplit("(chart ", 1)[1].rstrip(")") for entry in offline_plan.uncovered_charts(result)}
        assert not uncovered, f"{stack}: charts without a workload declaration: {uncovered}"
