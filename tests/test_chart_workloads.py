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
    DECLARED_POLICIES,
    ChartContainer,
    ChartRelease,
    ChartWorkload,
    chart_objects,
    declares,
    fullname,
)
from components.metrics_server import MetricsServerArgs
from components.storage import ZFS_CONTROLLER_CONTAINERS, ZFS_NODE_CONTAINERS, zfs_localpv_values
from deploy import mockrun
from deploy import plan as offline_plan
from deploy.project import stack_config
from policy.scaleplane_policy import evaluate

#: Charts the stacks install whose components do not declare their workloads yet (the mesh and
#: cluster components add theirs). A chart missing here and undeclared fails the test below.
NOT_YET_DECLARED = {
    "linkerd-control-plane",
    "linkerd-viz",
    "traefik",
}


def release(chart: str, name: str, values: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    return {
        "type": "kubernetes:helm.sh/v3:Release",
        "name": f"{name}-release",
        "urn": f"urn:pulumi:test::scaleplane::kubernetes:helm.sh/v3:Release::{name}-release",
        "props": {"chart": chart, "name": name, "namespace": namespace, "values": values},
    }


def containers(objects: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    (obj,) = [o for o in objects if o["props"]["metadata"]["name"] == name]
    return {c["name"]: c for c in obj["props"]["spec"]["template"]["spec"]["containers"]}


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


def test_every_chart_the_stacks_install_is_declared_or_known(stack_plans: dict[str, mockrun.PlanResult]) -> None:
    for stack, result in stack_plans.items():
        uncovered = {entry.rsplit("(chart ", 1)[1].rstrip(")") for entry in offline_plan.uncovered_charts(result)}
        assert uncovered <= NOT_YET_DECLARED, f"{stack}: charts without a workload declaration: {uncovered}"
        assert not uncovered & chart_workloads.declared_charts()
