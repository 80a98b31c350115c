"""The pack on the real stacks: their settings reach it, and the program passes every mandatory rule."""

from __future__ import annotations

import json

import pytest
from policy_support import ROOT

from deploy import mockrun
from deploy.project import STACKS, stack_config
from policy.scaleplane_policy import MOCKRUN_UNKNOWN, evaluate, validate_config
from settings import from_config


def test_the_pack_spells_unknown_values_as_the_mock_run_does():
    assert MOCKRUN_UNKNOWN == mockrun.UNKNOWN


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_a_policy_config_that_leaves_the_stack_settings_to_the_stack(stack):
    path = ROOT / "policy" / "config" / f"{stack}.json"
    config = json.loads(path.read_text())
    validate_config(config)
    # balancer and production come from the stack's own config; a copy here could drift from it.
    assert "balancer" not in (config.get("load-balancer-services") or {})
    assert "production" not in (config.get("production-availability") or {})


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_has_no_mandatory_violation_on_any_stack(stack):
    settings = from_config(stack_config(stack))
    plan = mockrun.run_stack(stack)
    config = json.loads((ROOT / "policy" / "config" / f"{stack}.json").read_text())
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in plan.resources]
    violations = evaluate(resources, config, balancer=settings.balancer, production=settings.production)
    mandatory = [f"{v.policy}: {v.message}" for v in violations if v.enforcement == "mandatory"]
    assert mandatory == []


def _program(with_probes: bool):
    """A small program written with the SDK's typed args, as the components write it."""
    import pulumi
    import pulumi_kubernetes as k8s

    def program() -> None:
        provider = k8s.Provider("kube", context="test")
        opts = pulumi.ResourceOptions(provider=provider)
        labels = {"app": "web"}
        probes = {}
        if with_probes:
            probes = {
                "liveness_probe": k8s.core.v1.ProbeArgs(
                    http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http"), period_seconds=20
                ),
                "readiness_probe": k8s.core.v1.ProbeArgs(tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=8080)),
            }
        k8s.apps.v1.Deployment(
            "web",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="web", namespace="apps"),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="web",
                                image="registry.example.com/web:1.0.0",
                                ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=8080)],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "100m", "memory": "64Mi"}
                                ),
                                **probes,
                            )
                        ]
                    ),
                ),
            ),
            opts=opts,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            "web",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="web", namespace="apps"),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name="web"
                ),
                min_replicas=1,
                max_replicas=5,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=50),
                        ),
                    )
                ],
            ),
            opts=opts,
        )

    return program


@pytest.mark.parametrize("with_probes", [True, False])
def test_the_rules_read_what_the_sdk_registers(with_probes):
    plan = mockrun.run("local", {}, _program(with_probes))
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in plan.resources]
    mandatory = [(v.policy, v.message) for v in evaluate(resources) if v.enforcement == "mandatory"]
    if with_probes:
        assert mandatory == []
    else:
        assert mandatory == [
            ("workload-probes", 'Deployment apps/web: container "web" has no livenessProbe'),
            ("workload-probes", 'Deployment apps/web: container "web" has no readinessProbe'),
        ]
