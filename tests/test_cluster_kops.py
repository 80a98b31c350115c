"""KopsCluster under mocks: the retained state store, the generated specs, and kops' lifecycle.

The lifecycle scripts are also run for real, against a stand-in `kops` that records its calls,
so the order of kops commands and what reaches stdout (only the kubeconfig) are checked.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.kops import KopsBinaryNotFoundError, encryption_config, find_kops
from deploy import mockrun
from deploy.project import stack_config

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: dev.scaleplane.k8s.local
  cluster:
    server: https://api-dev-scaleplane-k8s-local-0123456789.elb.us-east-1.amazonaws.com
    certificate-authority-data: Q0EgZGF0YQ==
contexts:
- name: dev.scaleplane.k8s.local
  context: {cluster: dev.scaleplane.k8s.local, user: dev.scaleplane.k8s.local}
current-context: dev.scaleplane.k8s.local
users:
- name: dev.scaleplane.k8s.local
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kops
      args: [helpers, kubectl-auth, --cluster=dev.scaleplane.k8s.local, --state=s3://scaleplane-dev-kops-state]
"""

FAKE_KOPS = """#!/bin/bash
# Stand-in for kops: records each call; `replace -f -` keeps stdin; `export kubeconfig` writes one.
printf '%s\\n' "$*" >> "$KOPS_CALLS"
echo "kops log line for: $1" >&2
case "$1" in
  replace) cat > "$KOPS_CALLS.specs" ;;
  create) cat > "$KOPS_CALLS.encryptionconfig" ;;
  get)
    if [ "$2" = secrets ]; then
      [ -n "${KOPS_HAS_ENCRYPTIONCONFIG:-}" ] || { echo "no secrets found" >&2; exit 1; }
      exit 0
    fi
    printf 'NAME\tROLE\tMACHINETYPE\tMIN\tMAX\tZONES\n'
    printf 'control-plane-us-east-1a\tControlPlane\tt3.medium\t1\t1\tus-east-1a\n'
    printf 'nodes\tNode\tt3.medium\t1\t3\tus-east-1a,us-east-1b\n'
    printf 'production\tNode\tt3.medium\t2\t3\tus-east-1a,us-east-1b\n'
    printf 'development\tNode\tt3.medium\t1\t2\tus-east-1a,us-east-1b\n'
    printf 'retired\tNode\tt3.medium\t1\t2\tus-east-1a\n' ;;
  export)
    while [ $# -gt 0 ]; do
      if [ "$1" = --kubeconfig ]; then cat "$KOPS_KUBECONFIG_SOURCE" > "$2"; fi
      shift
    done ;;
esac
"""

FAKE_KUBECTL = """#!/bin/bash
# Stand-in for kubectl: records each call in the same log as kops; fails a drain on request.
printf 'kubectl %s\\n' "$*" >> "$KOPS_CALLS"
if [ "$1" = get ]; then
  [ -n "${KUBECTL_NO_NODES:-}" ] || echo "node/i-0123456789abcdef0"
  exit 0
fi
if [ "$1" = drain ] && [ -n "${KUBECTL_DRAIN_FAILS:-}" ]; then
  echo "error: cannot evict pod as it would violate the pod's disruption budget" >&2
  exit 1
fi
"""


def _program() -> None:
    import settings
    from components.cluster import cluster_for

    config = settings.load()
    cluster_for(f"{config.environment}-cluster", config)


def _dev_config(**kops_changes: Any) -> dict[str, str]:
    config = stack_config("dev")
    kops = json.loads(config["scaleplane:kops"])
    kops.update(kops_changes)
    config["scaleplane:kops"] = json.dumps(kops)
    return config


@pytest.fixture(scope="module")
def dev() -> mockrun.PlanResult:
    return mockrun.run_stack("dev")


@pytest.fixture()
def fake_kops(tmp_path: Path) -> Path:
    binary = tmp_path / "bin" / "kops"
    binary.parent.mkdir()
    binary.write_text(FAKE_KOPS)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "kubeconfig.source").write_text(KUBECONFIG)
    return binary


@pytest.fixture()
def fake_kubectl(tmp_path: Path) -> Path:
    binary = tmp_path / "kubectl-bin" / "kubectl"
    binary.parent.mkdir()
    binary.write_text(FAKE_KUBECTL)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.fixture()
def with_kubeconfig_output() -> Iterator[None]:
    saved = dict(mockrun.MOCK_OUTPUTS)
    mockrun.MOCK_OUTPUTS["command:local:Command"] = lambda name, inputs: {"stdout": KUBECONFIG, "stderr": ""}
    try:
        yield
    finally:
        mockrun.MOCK_OUTPUTS.clear()
        mockrun.MOCK_OUTPUTS.update(saved)


def _command(plan: mockrun.PlanResult) -> mockrun.PlannedResource:
    (command,) = plan.of_type("command:local:Command")
    return command


def _specs(plan: mockrun.PlanResult) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(_command(plan).inputs["stdin"]))


def test_state_store_is_retained_versioned_encrypted_and_private(dev: mockrun.PlanResult) -> None:
    (bucket,) = dev.of_type("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == "scaleplane-dev-kops-state"
    # Retained, not protected: a protected resource fails `pulumi destroy` before kops deletes the cluster.
    assert bucket.retain_on_delete is True and bucket.protect is False
    assert bucket.inputs["forceDestroy"] is False
    bucket_id = "dev-cluster-state-id"
    (versioning,) = dev.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs == {"bucket": bucket_id, "versioningConfiguration": {"status": "Enabled"}}
    (encryption,) = dev.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert encryption.inputs["bucket"] == bucket_id
    (rule,) = encryption.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (block,) = dev.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    (ownership,) = dev.of_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    # The bucket stays behind locked down: deleting its settings would suspend versioning and lift the block.
    assert all(r.retain_on_delete and not r.protect for r in (versioning, encryption, block, ownership))
    assert block.inputs == {
        "bucket": bucket_id,
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }


def test_kops_runs_only_after_the_state_store_is_locked_down(dev: mockrun.PlanResult) -> None:
    command = _command(dev)
    for type_ in (
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    ):
        (resource,) = dev.of_type(type_)
        assert resource.urn in command.dependencies
    environment = command.inputs["environment"]
    assert environment["KOPS_STATE_STORE"] == "s3://scaleplane-dev-kops-state"
    # The encryption key is a secret input (known only once generated).
    assert set(environment) == {"KOPS_STATE_STORE", "SCALEPLANE_ENCRYPTION_CONFIG"}
    assert "environment" in command.secret_paths


def test_cluster_spec_is_the_playbook_cluster(dev: mockrun.PlanResult) -> None:
    cluster, *groups = _specs(dev)
    assert cluster["apiVersion"] == "kops.k8s.io/v1alpha2" and cluster["kind"] == "Cluster"
    assert cluster["metadata"]["name"] == "dev.scaleplane.k8s.local"
    spec = cluster["spec"]
    assert spec["kubernetesVersion"] == "1.34.0"
    assert spec["configBase"] == "s3://scaleplane-dev-kops-state/dev.scaleplane.k8s.local"
    assert {s["zone"] for s in spec["subnets"]} == {"us-east-1a", "us-east-1b"}
    control = [g for g in groups if g["spec"]["role"] == "ControlPlane"]
    assert [g["metadata"]["name"] for g in control] == ["control-plane-us-east-1a"]
    assert control[0]["spec"]["minSize"] == control[0]["spec"]["maxSize"] == 1
    members = {m["instanceGroup"] for etcd in spec["etcdClusters"] for m in etcd["etcdMembers"]}
    assert members == {"control-plane-us-east-1a"}
    # kops-managed snapshot support needs cert-manager and the external EBS CSI driver.
    assert spec["snapshotController"]["enabled"] and spec["certManager"]["enabled"]
    assert spec["cloudConfig"]["awsEBSCSIDriver"]["enabled"] is True
    # Metrics Server authenticates to the kubelet with a service-account token: webhook authn/authz.
    kubelet = spec["kubelet"]
    assert kubelet == {"anonymousAuth": False, "authenticationTokenWebhook": True, "authorizationMode": "Webhook"}
    # Secrets encrypted at rest; the key is kops' encryptionconfig secret (see the scripts).
    assert spec["encryptionConfig"] is True
    # dev lists no API or SSH access: nothing outside the VPC reaches either.
    assert spec["kubernetesApiAccess"] == [] and spec["sshAccess"] == []
    assert spec["api"]["loadBalancer"] == {"type": "Internal", "class": "Network"}


def test_listed_api_cidrs_get_a_public_api_load_balancer_open_only_to_them() -> None:
    config = _dev_config(kubernetesApiAccess=["198.51.100.0/24"], sshAccess=["198.51.100.7/32"])
    spec = _specs(mockrun.run("dev", config, _program))[0]["spec"]
    assert spec["kubernetesApiAccess"] == ["198.51.100.0/24"]
    assert spec["sshAccess"] == ["198.51.100.7/32"]
    assert spec["api"]["loadBalancer"]["type"] == "Public"


def test_encryption_config_seals_secrets_and_keeps_older_ones_readable() -> None:
    document = yaml.safe_load(encryption_config("a2V5"))
    assert document["apiVersion"] == "apiserver.config.k8s.io/v1" and document["kind"] == "EncryptionConfiguration"
    (rule,) = document["resources"]
    assert rule["resources"] == ["secrets"]
    first, last = rule["providers"]
    assert first == {"secretbox": {"keys": [{"name": "key1", "secret": "a2V5"}]}}
    assert last == {"identity": {}}


def test_encryption_key_is_32_generated_bytes(dev: mockrun.PlanResult) -> None:
    (key,) = dev.of_type("random:index/randomBytes:RandomBytes")
    assert key.inputs["length"] == 32
    assert key.parent == _command(dev).parent


def test_instance_groups_carry_environment_labels_and_taints() -> None:
    config = _dev_config()
    kops = json.loads(config["scaleplane:kops"])
    for group in kops["instanceGroups"]:
        if group["name"] == "development":
            group["taints"] = [{"key": "environment", "value": "development", "effect": "NoSchedule"}]
    config["scaleplane:kops"] = json.dumps(kops)
    # todo-dev must run on the development nodes, so it tolerates their taint (settings refuse a
    # required placement no group can take).
    todo = json.loads(config["scaleplane:todo"])
    todo["placement"]["tolerations"] = [{"key": "environment", "value": "development", "effect": "NoSchedule"}]
    config["scaleplane:todo"] = json.dumps(todo)
    plan = mockrun.run("dev", config, _program)
    groups = {g["metadata"]["name"]: g["spec"] for g in _specs(plan)[1:]}
    assert groups["nodes"]["nodeLabels"] == {"kops.k8s.io/instancegroup": "nodes"}
    assert groups["production"]["nodeLabels"]["environment"] == "production"
    assert groups["production"]["minSize"] == 2
    assert groups["development"]["nodeLabels"]["environment"] == "development"
    assert groups["development"]["taints"] == ["environment=development:NoSchedule"]
    assert groups["production"]["taints"] == []
    for name, spec in groups.items():
        assert spec["instanceMetadata"]["httpTokens"] == "required", name
        if spec["role"] == "Node":
            assert spec["cloudLabels"]["k8s.io/cluster-autoscaler/dev.scaleplane.k8s.local"] == ""
            # kops.k8s.io/v1alpha2 field names (the nested rootVolume exists only in v1alpha3).
            assert "rootVolume" not in spec, name
            assert (spec["rootVolumeSize"], spec["rootVolumeType"], spec["rootVolumeEncryption"]) == (20, "gp3", True)


def test_kubeconfig_stays_unknown_in_preview(dev: mockrun.PlanResult) -> None:
    (provider,) = dev.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == mockrun.UNKNOWN


def test_missing_binary_fails_up_with_a_clear_error() -> None:
    with pytest.raises(KopsBinaryNotFoundError, match=r"scaleplane:kops\.kopsBinary"):
        find_kops("/nonexistent/kops")
    with pytest.raises(Exception, match="kops binary '/nonexistent/kops' was not found"):
        mockrun.run("dev", _dev_config(kopsBinary="/nonexistent/kops"), _program, preview=False)


def test_up_with_kops_present_gives_a_secret_kubeconfig(fake_kops: Path, with_kubeconfig_output: None) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops)), _program, preview=False)
    command = _command(plan)
    assert command.inputs["logging"] == "stderr"
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_paths
    kubeconfig = yaml.safe_load(provider.inputs["kubeconfig"])
    expected = yaml.safe_load(KUBECONFIG)
    # kopsBinary is a path off PATH: the provider's credential plugin must run that binary.
    expected["users"][0]["user"]["exec"]["command"] = str(fake_kops)
    assert kubeconfig == expected


def test_kubeconfig_keeps_kops_from_path_when_the_binary_is_a_name() -> None:
    from components.cluster.kops import _plugin_runs

    assert _plugin_runs(KUBECONFIG, "kops") == KUBECONFIG
    renamed = yaml.safe_load(_plugin_runs(KUBECONFIG, "kops-1.34"))
    assert renamed["users"][0]["user"]["exec"]["command"] == "kops-1.34"
    assert renamed["users"][0]["user"]["exec"]["args"][:2] == ["helpers", "kubectl-auth"]


def _run_script(
    script: str, stdin: str, tmp_path: Path, fake_kops: Path, **extra_env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = tmp_path / "calls"
    env = {
        **extra_env,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KOPS_STATE_STORE": "s3://scaleplane-dev-kops-state",
        "KOPS_CALLS": str(calls),
        "KOPS_KUBECONFIG_SOURCE": str(tmp_path / "kubeconfig.source"),
    }
    result = subprocess.run(
        ["/bin/bash", "-c", script], input=stdin, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    logged = calls.read_text().splitlines() if calls.exists() else []
    return result, logged


def test_create_update_delete_drive_kops_in_order(fake_kops: Path, fake_kubectl: Path, tmp_path: Path) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops), kubectlBinary=str(fake_kubectl)), _program)
    command = _command(plan).inputs
    name = "dev.scaleplane.k8s.local"

    sealed = encryption_config("c2VjcmV0Ym94IGtleSBvZiAzMiBieXRlcyBmb3IgdGVzdHM=")
    created, calls = _run_script(
        command["create"], command["stdin"], tmp_path, fake_kops, SCALEPLANE_ENCRYPTION_CONFIG=sealed
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout == KUBECONFIG  # only the kubeconfig reaches stdout; logs go to stderr
    assert "kops log line" in created.stderr
    assert sealed not in created.stderr  # the key is never logged
    assert [c.split()[:2] for c in calls] == [
        ["replace", "-f"],
        ["get", "secrets"],
        ["create", "secret"],
        ["update", "cluster"],
        ["export", "kubeconfig"],
        ["validate", "cluster"],
    ]
    assert calls[0] == "replace -f - --force"
    # The encryption key is stored (from stdin, never replaced) before the first update needs it.
    assert calls[1] == f"get secrets encryptionconfig --name {name}"
    assert calls[2] == f"create secret encryptionconfig --name {name} -f -"
    assert (tmp_path / "calls.encryptionconfig").read_text() == sealed
    assert f"--name {name} --yes" in calls[3]
    assert "--auth-plugin" in calls[4]
    assert (tmp_path / "calls.specs").read_text() == command["stdin"]

    (tmp_path / "calls").unlink()
    updated, calls = _run_script(
        command["update"],
        command["stdin"],
        tmp_path,
        fake_kops,
        SCALEPLANE_ENCRYPTION_CONFIG=encryption_config("another key"),
        KOPS_HAS_ENCRYPTIONCONFIG="1",
    )
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout == KUBECONFIG
    assert [c.split()[0] for c in calls] == [
        "replace",
        "get",
        "update",
        "export",
        "get",
        "kubectl",
        "kubectl",
        "kubectl",
        "delete",
        "rolling-update",
        "validate",
    ]
    # The existing encryption secret is kept: a new key would make every Secret unreadable.
    assert calls[1] == f"get secrets encryptionconfig --name {name}"
    # The worker group settings no longer list goes, drained first through the exported
    # kubeconfig; the listed ones and the control plane stay.
    assert calls[4] == f"get instancegroups --name {name}"
    assert calls[5] == "kubectl get nodes -l kops.k8s.io/instancegroup=retired -o name"
    assert calls[6] == "kubectl cordon -l kops.k8s.io/instancegroup=retired"
    assert calls[7] == (
        "kubectl drain -l kops.k8s.io/instancegroup=retired --ignore-daemonsets --delete-emptydir-data --timeout=15m"
    )
    assert calls[8] == f"delete instancegroup retired --name {name} --yes"
    assert calls[9] == f"rolling-update cluster --name {name} --yes"

    (tmp_path / "calls").unlink()
    deleted, calls = _run_script(command["delete"], "", tmp_path, fake_kops)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == ""
    assert calls == [f"delete cluster --name {name} --yes"]


def test_a_group_whose_drain_fails_is_not_deleted(fake_kops: Path, fake_kubectl: Path, tmp_path: Path) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops), kubectlBinary=str(fake_kubectl)), _program)
    command = _command(plan).inputs
    updated, calls = _run_script(
        command["update"], command["stdin"], tmp_path, fake_kops, KUBECTL_DRAIN_FAILS="1", KOPS_HAS_ENCRYPTIONCONFIG="1"
    )
    assert updated.returncode != 0
    assert "disruption budget" in updated.stderr
    assert any(c.startswith("kubectl drain") for c in calls)
    # Nothing deleted, nothing rolled: the update stops with the group still running.
    assert not any(c.startswith(("delete", "rolling-update")) for c in calls)


def test_a_removed_group_without_nodes_is_deleted_with_nothing_to_drain(
    fake_kops: Path, fake_kubectl: Path, tmp_path: Path
) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops), kubectlBinary=str(fake_kubectl)), _program)
    command = _command(plan).inputs
    updated, calls = _run_script(
        command["update"], command["stdin"], tmp_path, fake_kops, KUBECTL_NO_NODES="1", KOPS_HAS_ENCRYPTIONCONFIG="1"
    )
    assert updated.returncode == 0, updated.stderr
    kubectl = [c for c in calls if c.startswith("kubectl")]
    assert kubectl == ["kubectl get nodes -l kops.k8s.io/instancegroup=retired -o name"]
    assert "delete instancegroup retired --name dev.scaleplane.k8s.local --yes" in calls


def test_without_kubectl_a_removed_group_is_refused_not_deleted(fake_kops: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing" / "kubectl")
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops), kubectlBinary=missing), _program)
    command = _command(plan).inputs
    updated, calls = _run_script(
        command["update"], command["stdin"], tmp_path, fake_kops, KOPS_HAS_ENCRYPTIONCONFIG="1"
    )
    assert updated.returncode == 127
    assert "scaleplane:kops.kubectlBinary" in updated.stderr
    assert not any(c.startswith("delete") for c in calls)


def test_scripts_stop_with_a_clear_message_when_kops_is_missing(tmp_path: Path, fake_kops: Path) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(tmp_path / "missing" / "kops")), _program)
    command = _command(plan).inputs
    result, calls = _run_script(command["create"], command["stdin"], tmp_path, fake_kops)
    assert result.returncode == 127
    assert "not found" in result.stderr and "scaleplane:kops.kopsBinary" in result.stderr
    assert calls == []


def test_aws_nlb_balancer_enables_kops_load_balancer_controller() -> None:
    config = {**_dev_config(), "scaleplane:balancer": "aws-nlb", "scaleplane:nlb": json.dumps({"scheme": "internal"})}
    cluster = _specs(mockrun.run("dev", config, _program))[0]
    assert cluster["spec"]["awsLoadBalancerController"] == {"enabled": True}
    assert "awsLoadBalancerController" not in _specs(mockrun.run("dev", _dev_config(), _program))[0]["spec"]


def _exporting_program() -> None:
    import pulumi

    import settings
    from components.cluster import cluster_for

    config = settings.load()
    cluster = cluster_for(f"{config.environment}-cluster", config)
    pulumi.export("name", cluster.name)
    pulumi.export("endpoint", cluster.endpoint)
    pulumi.export("oidcIssuer", cluster.oidc_issuer)
    pulumi.export("kubeconfig", cluster.kubeconfig)


def test_component_outputs(fake_kops: Path, with_kubeconfig_output: None) -> None:
    plan = mockrun.run("dev", _dev_config(kopsBinary=str(fake_kops)), _exporting_program, preview=False)
    assert plan.outputs["name"] == "dev.scaleplane.k8s.local"
    assert plan.outputs["endpoint"] == yaml.safe_load(KUBECONFIG)["clusters"][0]["cluster"]["server"]
    assert plan.outputs["oidcIssuer"] is None
    assert plan.secret_outputs == {"kubeconfig"}
