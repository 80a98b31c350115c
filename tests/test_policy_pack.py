"""policy/__main__.py: the pulumi_policy wrapper around the rules.

In process: each policy's validate callback reports through a fake report_violation, on
properties shaped as the engine hands them (proxied, numbers as floats, unknowns as sentinels).
Out of process: the pack runs as `pulumi preview` starts it and answers the analyzer gRPC calls.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.json_format import ParseDict
from policy_support import ROOT, container, helm, hpa, pod_spec, probe, service, workload
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy.scaleplane_policy import POLICIES

POLICY_DIR = ROOT / "policy"


@pytest.fixture(scope="module")
def pack() -> dict[str, Any]:
    """The pack module's namespace, loaded as Pulumi loads it (policy/ on sys.path) but not run."""
    sys.path.insert(0, str(POLICY_DIR))
    try:
        yield runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="scaleplane_policy_pack")
    finally:
        sys.path.remove(str(POLICY_DIR))


def engine_props(props: dict[str, Any]) -> Any:
    """Properties as pulumi_policy passes them: every number a float, behind the unknown-checking proxy."""

    def floats(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return float(value)
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(v) for v in value]
        return value

    return unknown_checking_proxy(floats(props))


def run_resource_policy(policy: ResourceValidationPolicy, resource: dict[str, Any], config=None) -> list[tuple]:
    reports: list[tuple] = []
    args = ResourceValidationArgs(
        resource["type"], engine_props(resource["props"]), resource["urn"], resource["name"], None, None, config or {}
    )
    policy.validate(args, lambda message, urn=None: reports.append((message, urn)))
    return reports


def run_stack_policy(policy: StackValidationPolicy, resources: list[dict[str, Any]], config=None) -> list[tuple]:
    reports: list[tuple] = []
    policy_resources = [
        PolicyResource(r["type"], engine_props(r["props"]), r["urn"], r["name"], None, None, None, [], {})
        for r in resources
    ]
    policy.validate(
        StackValidationArgs(policy_resources, config or {}), lambda message, urn=None: reports.append((message, urn))
    )
    return reports


def test_every_rule_becomes_a_policy_with_its_level_and_schema(pack):
    built = {p.name: p for p in pack["build_policies"]()}
    assert list(built) == [p.name for p in POLICIES]
    for spec in POLICIES:
        policy = built[spec.name]
        expected = ResourceValidationPolicy if spec.scope == "resource" else StackValidationPolicy
        assert isinstance(policy, expected)
        assert policy.enforcement_level == EnforcementLevel(spec.level)
        assert policy.config_schema.properties == spec.properties
        assert policy.description == spec.description
    assert pack["PACK_NAME"] == "scaleplane-policies"


#: For each resource policy: an object it reports (and what it says), and one it passes.
CASES = {
    "workload-probes": (
        workload(pod=pod_spec(container("web", liveness=None))),
        'container "web" has no livenessProbe',
        workload(),
    ),
    "cpu-requests": (
        workload("CronJob", pod=pod_spec(container("tick", cpu=None))),
        "sets no cpu request",
        workload("CronJob"),
    ),
    "memory-requests-limits": (
        workload(pod=pod_spec(container(memory_limit=None))),
        "sets no memory limit",
        workload(),
    ),
    "image-tags": (workload(pod=pod_spec(container(image="nginx:latest"))), "uses the tag latest", workload()),
    "load-balancer-services": (service(load_balancer_class="service.k8s.aws/nlb"), "it must have none", service()),
    "probe-timings": (
        workload(pod=pod_spec(container(readiness=probe(timeoutSeconds=30)))),
        "timeoutSeconds (30)",
        workload(),
    ),
    "container-security": (workload(pod=pod_spec(container(security={"runAsUser": 0}))), "runs as root", workload()),
    "helm-chart-versions": (
        helm("Release", "ms", "metrics-server", "^3"),
        "is not an exact version",
        helm("Release", "ms", "metrics-server", "3.13.1"),
    ),
    "open-load-balancers": (
        service(annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}),
        "internet-facing balancer without loadBalancerSourceRanges",
        service(annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}),
    ),
}
#: Policy properties a case needs (the engine's config for that policy).
CASE_CONFIG = {"open-load-balancers": {"production": True}}


def test_every_resource_policy_has_a_case():
    assert set(CASES) == {p.name for p in POLICIES if p.scope == "resource"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_resource_policy_reports_through_report_violation(pack, name):
    policy = {p.name: p for p in pack["build_policies"]()}[name]
    failing, expected, passing = CASES[name]
    [(message, urn)] = run_resource_policy(policy, failing, CASE_CONFIG.get(name))
    assert expected in message and urn is None
    assert run_resource_policy(policy, passing, CASE_CONFIG.get(name)) == []


def test_numbers_arrive_as_floats_and_still_count_as_integers(pack):
    policy = {p.name: p for p in pack["build_policies"]()}["workload-probes"]
    named = container(liveness={"tcpSocket": {"port": 8080}}, readiness={"grpc": {"port": 9090}})
    assert run_resource_policy(policy, workload(pod=pod_spec(named))) == []


def test_unknown_preview_values_are_not_guessed_at(pack):
    policy = {p.name: p for p in pack["build_policies"]()}["cpu-requests"]
    pending = workload(pod=pod_spec(container(cpu=UNKNOWN_STRING_VALUE)))
    assert run_resource_policy(policy, pending) == []
    assert pack["plain"](unknown_checking_proxy({"a": [UNKNOWN_STRING_VALUE, 2.0, 0.5]})) == {
        "a": [pack["UNKNOWN"], 2, 0.5]
    }


def test_policy_properties_from_the_engine_are_applied(pack):
    policy = {p.name: p for p in pack["build_policies"]()}["cpu-requests"]
    failing = workload(pod=pod_spec(container("web", cpu=None)))
    assert run_resource_policy(policy, failing, {"exemptNamespaces": ["apps"]}) == []
    with pytest.raises(ValueError, match="cpu-requests.exemptNamespaces: expected a list"):
        run_resource_policy(policy, failing, {"exemptNamespaces": "apps"})


def test_the_hpa_stack_policy_reports_on_the_hpa(pack):
    policy = {p.name: p for p in pack["build_policies"]()}["hpa-targets"]
    lonely = hpa(target="missing")
    [(message, urn)] = run_stack_policy(policy, [workload(), lonely])
    assert "scales Deployment missing, which is not in this stack" in message
    assert urn == lonely["urn"]
    assert run_stack_policy(policy, [workload(), hpa()]) == []


def test_balancer_and_production_default_to_the_stacks_own_config(pack):
    built = {p.name: p for p in pack["build_policies"]()}
    replicated = workload(replicas=1)
    try:
        set_all_config({"scaleplane:balancer": "none", "scaleplane:production": "true"}, [])
        [(message, _)] = run_resource_policy(built["load-balancer-services"], service())
        assert "balancer: none" in message
        assert len(run_stack_policy(built["production-availability"], [replicated])) == 2
        # The policy config, when it says so, wins over the stack's settings.
        assert run_resource_policy(built["load-balancer-services"], service(), {"balancer": "cloud"}) == []
        assert run_stack_policy(built["production-availability"], [replicated], {"production": False}) == []
    finally:
        set_all_config({}, [])
    assert run_resource_policy(built["load-balancer-services"], service()) == []
    assert run_stack_policy(built["production-availability"], [replicated]) == []


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return ParseDict(value, struct_pb2.Struct())


@pytest.fixture(scope="module")
def analyzer():
    """The pack started as the Pulumi CLI starts it: its gRPC port on stdout."""
    env = {**os.environ, "PULUMI_CONFIG": json.dumps({"scaleplane:balancer": "metallb"})}
    process = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=POLICY_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.poll() is not None else port
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_running_pack_describes_its_policies(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=20)
    assert info.name == "scaleplane-policies"
    policies = {p.name: p for p in info.policies}
    assert list(policies) == [p.name for p in POLICIES]
    assert policies["workload-probes"].enforcementLevel == analyzer_pb2.MANDATORY
    assert policies["hpa-targets"].policy_type == analyzer_pb2.POLICY_TYPE_STACK
    assert "exemptNamespaces" in policies["image-tags"].configSchema.properties


def test_the_running_pack_analyzes_resources_and_stacks(analyzer):
    analyzer.Configure(
        analyzer_pb2.ConfigureAnalyzerRequest(
            policyConfig={
                "image-tags": analyzer_pb2.PolicyConfig(
                    enforcementLevel=analyzer_pb2.MANDATORY, properties=_struct({"requireDigest": False})
                ),
            }
        ),
        timeout=20,
    )
    bad = workload(pod=pod_spec(container("web", image="nginx", cpu=None, readiness=None)))
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=bad["type"], properties=_struct(bad["props"]), urn=bad["urn"], name=bad["name"]
        ),
        timeout=20,
    )
    found = {(d.policyName, d.enforcementLevel) for d in response.diagnostics}
    assert ("workload-probes", analyzer_pb2.MANDATORY) in found
    assert ("cpu-requests", analyzer_pb2.MANDATORY) in found
    assert ("image-tags", analyzer_pb2.MANDATORY) in found
    # The stack's scaleplane:balancer (metallb) reached load-balancer-services.
    lb = service(load_balancer_class="service.k8s.aws/nlb")
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=lb["type"], properties=_struct(lb["props"]), urn=lb["urn"], name=lb["name"]),
        timeout=20,
    )
    assert any("with balancer metallb" in d.message for d in response.diagnostics)
    lonely = hpa(target="missing")
    stack = analyzer.AnalyzeStack(
        analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=lonely["type"], properties=_struct(lonely["props"]), urn=lonely["urn"], name=lonely["name"]
                ),
            ]
        ),
        timeout=20,
    )
    [diagnostic] = [d for d in stack.diagnostics if d.policyName == "hpa-targets"]
    assert diagnostic.urn == lonely["urn"] and "not in this stack" in diagnostic.message


def test_the_pack_imports_its_rules_whatever_the_working_directory(tmp_path):
    # As `python -m pulumi.policy` does it: runpy on the file, from elsewhere, policy/ not on sys.path.
    script = (
        f"import runpy; ns = runpy.run_path({str(POLICY_DIR / '__main__.py')!r}, run_name='pack'); "
        "print(len(ns['build_policies']()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(POLICIES))
