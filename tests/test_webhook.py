"""WebhookReady: a Job that dry-runs probe objects until a webhook admits them, and what it may do."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from traffic_support import depends_on, named, object_errors, run_on_cluster

from components.webhook import (
    KUBECTL_IMAGE,
    PROBE_SCRIPT,
    AdmissionProbe,
    WebhookReady,
    WebhookReadyArgs,
)
from deploy import mockrun
from policy.scaleplane_policy import evaluate

POOL_PROBE = AdmissionProbe(
    api_version="metallb.io/v1beta1",
    kind="L2Advertisement",
    resource="l2advertisements",
    namespace="metallb-system",
    body={"spec": {}},
)
POD_PROBE = AdmissionProbe(
    api_version="v1",
    kind="Pod",
    resource="pods",
    namespace="apps",
    annotations={"linkerd.io/inject": "enabled"},
    body={"spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}},
    expect="{.spec.containers[?(@.name=='linkerd-proxy')].name}",
)
CLUSTER_PROBE = AdmissionProbe(
    api_version="example.io/v1", kind="ClusterThing", resource="clusterthings", namespace=None, body={"spec": {}}
)


def build(provider: Any, **overrides: Any) -> WebhookReady:
    installer = k8s.core.v1.ConfigMap(
        "installer",
        metadata={"name": "installer", "namespace": "metallb-system"},
        opts=pulumi.ResourceOptions(provider=provider),
    )
    args = WebhookReadyArgs(
        **{
            "webhook": "the test webhook",
            "namespace": "metallb-system",
            "job_name": "test-webhook-ready",
            "probes": [POOL_PROBE],
            **overrides,
        }
    )
    return WebhookReady("ready", args, provider, after=[installer])


@pytest.fixture(scope="module")
def plan() -> mockrun.PlanResult:
    return run_on_cluster(lambda provider: build(provider, probes=[POOL_PROBE, POD_PROBE]))


def test_the_job_waits_for_the_installer_and_its_own_permissions(plan: mockrun.PlanResult) -> None:
    job = named(plan, "ready-job")
    installer = named(plan, "installer")
    for role in ("ready-probes", "ready-account", "ready-network-policy", "ready-role", "ready-role-binding"):
        assert depends_on(job, named(plan, role)), role
        assert depends_on(named(plan, role), installer), f"{role} must wait for what installs the webhook"
    assert depends_on(job, installer)
    assert job.custom is True and job.delete_before_replace


def test_the_job_dry_runs_every_probe_with_a_pinned_kubectl(plan: mockrun.PlanResult) -> None:
    job = named(plan, "ready-job").inputs
    spec = job["spec"]
    assert spec["backoffLimit"] == 1
    assert spec["activeDeadlineSeconds"] == 60 * 5 + 120
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "test-webhook-ready"
    (container,) = pod["containers"]
    assert container["image"] == KUBECTL_IMAGE and ":" in KUBECTL_IMAGE.rsplit("/", 1)[1]
    assert container["command"][:2] == ["/bin/bash", "-c"]
    assert "kubectl create --dry-run=server" in container["command"][2]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ATTEMPTS"] == "60" and env["INTERVAL"] == "5" and env["WEBHOOK"] == "the test webhook"
    files = named(plan, "ready-probes").inputs["data"]
    assert sorted(files) == ["00-l2advertisement.json", "01-pod.json", "01-pod.jsonpath"]
    advertisement = json.loads(files["00-l2advertisement.json"])
    assert advertisement["metadata"]["generateName"] == "scaleplane-webhook-probe-"
    assert "name" not in advertisement["metadata"], "a fixed name would clash with an object that exists"
    assert advertisement["metadata"]["namespace"] == "metallb-system" and advertisement["spec"] == {}
    assert json.loads(files["01-pod.json"])["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert files["01-pod.jsonpath"] == POD_PROBE.expect


def test_rbac_grants_only_create_on_the_probed_resources(plan: mockrun.PlanResult) -> None:
    role = named(plan, "ready-role").inputs
    assert role["metadata"]["namespace"] == "metallb-system"
    assert role["rules"] == [{"apiGroups": ["metallb.io"], "resources": ["l2advertisements"], "verbs": ["create"]}]
    other = named(plan, "ready-role-apps").inputs
    assert other["metadata"]["namespace"] == "apps"
    assert other["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    binding = named(plan, "ready-role-binding-apps").inputs
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "test-webhook-ready", "namespace": "metallb-system"}
    ]
    assert binding["roleRef"]["kind"] == "Role"
    assert not [r for r in plan.resources if r.type.startswith("kubernetes:rbac.authorization.k8s.io/v1:Cluster")]


def test_a_cluster_scoped_probe_gets_a_cluster_role() -> None:
    plan = run_on_cluster(lambda provider: build(provider, probes=[CLUSTER_PROBE]))
    role = named(plan, "ready-cluster-role").inputs
    assert role["rules"] == [{"apiGroups": ["example.io"], "resources": ["clusterthings"], "verbs": ["create"]}]
    assert named(plan, "ready-cluster-role-binding").inputs["roleRef"]["kind"] == "ClusterRole"


def test_the_network_policy_admits_nothing_in_and_only_the_api_server_out(plan: mockrun.PlanResult) -> None:
    policy = named(plan, "ready-network-policy").inputs
    job = named(plan, "ready-job").inputs
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == job["spec"]["template"]["metadata"]["labels"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    assert spec["egress"] == [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]


def test_every_object_is_schema_valid_and_meets_the_mandatory_policies(plan: mockrun.PlanResult) -> None:
    for resource in plan.resources:
        if resource.is_kubernetes_object:
            assert object_errors(resource) == [], resource.name
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs} for r in plan.resources]
    violations = evaluate(resources, {"all": "mandatory"})
    assert [v.message for v in violations] == []


def test_a_changed_revision_or_probe_changes_the_pod_template() -> None:
    def template(**overrides: Any) -> dict[str, Any]:
        args = WebhookReadyArgs("w", "ns", "job", [POOL_PROBE], **overrides)
        return WebhookReady.job_spec(args, {}, WebhookReady.probe_files(args))["template"]["metadata"]

    assert template(revision="0.16.1") == template(revision="0.16.1")
    assert template(revision="0.16.1") != template(revision="0.16.2")
    other = AdmissionProbe(**{**POOL_PROBE.__dict__, "body": {"spec": {"interfaces": ["eth0"]}}})
    args = WebhookReadyArgs("w", "ns", "job", [other])
    assert WebhookReady.job_spec(args, {}, WebhookReady.probe_files(args))["template"]["metadata"] != template()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"probes": []}, "probes must list at least one"),
        ({"job_name": "Not_A_Label"}, "job_name"),
        ({"namespace": "bad namespace"}, "namespace"),
        ({"attempts": 0}, "attempts must be within"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"api_server_ports": ()}, "api_server_ports"),
        (
            {"probes": [AdmissionProbe("metallb.io", "L2Advertisement", "l2advertisements", "ns")]},
            "probes\\[0\\].api_version",
        ),
        ({"probes": [AdmissionProbe("v1", "Pod", "Pods", "ns")]}, "probes\\[0\\].resource"),
        ({"probes": [AdmissionProbe("v1", "Pod", "pods", "ns", body={"metadata": {}})]}, "must not set metadata"),
        ({"probes": [AdmissionProbe("v1", "Pod", "pods", "ns", generate_name="probe")]}, "generate_name"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_created(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_on_cluster(lambda provider: build(provider, **overrides))


def test_it_needs_what_installs_the_webhook() -> None:
    args = WebhookReadyArgs("w", "ns", "job", [POOL_PROBE])
    with pytest.raises(ValueError, match="needs `after`"):
        run_on_cluster(lambda provider: WebhookReady("ready", args, provider, after=[]))


# --- the script itself, against a fake kubectl ------------------------------------------------------


def run_script(
    tmp_path: Path, refusals: int, output: str, attempts: int = 4, expect: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run PROBE_SCRIPT with a kubectl that refuses `refusals` times, then prints `output`."""
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "00-l2advertisement.json").write_text(json.dumps(POOL_PROBE.manifest()))
    if expect:
        (probes / "00-l2advertisement.jsonpath").write_text("{.spec}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(
        "#!/bin/bash\n"
        f'echo "$@" >> "{tmp_path}/calls"\n'
        f'count=$(wc -l < "{tmp_path}/calls")\n'
        f'if [ "$count" -le {refusals} ]; then echo "connection refused" >&2; exit 1; fi\n'
        f'printf "%s" "{output}"\n'
    )
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PROBE_DIR": str(probes),
        "ATTEMPTS": str(attempts),
        "INTERVAL": "0",
        "WEBHOOK": "the test webhook",
    }
    result = subprocess.run(["bash", "-c", PROBE_SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    result.calls = (tmp_path / "calls").read_text().splitlines()  # type: ignore[attr-defined]
    return result


def test_the_script_retries_until_the_webhook_admits(tmp_path: Path) -> None:
    result = run_script(tmp_path, refusals=2, output="l2advertisement.metallb.io/scaleplane-webhook-probe-x")
    assert result.returncode == 0, result.stderr
    assert len(result.calls) == 3  # type: ignore[attr-defined]
    assert "--dry-run=server" in result.calls[0] and "-o name" in result.calls[0]  # type: ignore[attr-defined]
    assert "admits every probe (attempt 3)" in result.stdout
    assert "connection refused" in result.stdout


def test_the_script_gives_up_after_its_attempts(tmp_path: Path) -> None:
    result = run_script(tmp_path, refusals=10, output="x", attempts=3)
    assert result.returncode == 1
    assert len(result.calls) == 3  # type: ignore[attr-defined]
    assert "still refuses after 3 attempts" in result.stderr and "connection refused" in result.stderr


def test_an_expected_mark_must_be_printed(tmp_path: Path) -> None:
    # Admitted without the mark (a fail-open mutating webhook that never saw the object): not ready.
    result = run_script(tmp_path, refusals=0, output="", attempts=2, expect=True)
    assert result.returncode == 1
    assert "without the mark it must set" in result.stderr
    assert "-o jsonpath={.spec}" in result.calls[0]  # type: ignore[attr-defined]
