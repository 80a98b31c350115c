"""The BlueGreenDatabase component: what each colour and phase renders, and what switching changes."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlfake
from bluegreen_helpers import (
    BLUE_IMAGE,
    GREEN_IMAGE,
    LOADGEN_IMAGE,
    kube_objects,
    one,
    raw_config,
    run_components,
    run_program,
    validate_object,
)
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import settings
from deploy import mockrun
from settings import SettingsError
from settings.database import claim_name

ZFS = {"driver": "zfs-localpv", "zfsLocalPv": {"poolName": "zfspv-pool"}}
SNAPSHOT = "blue-20261126160000"

#: Phase 1: only blue.
BLUE_ONLY: dict[str, Any] = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
#: Phase 2: blue live, a snapshot of its PVC, green restored from it.
BOTH: dict[str, Any] = {
    "active": "blue",
    "colours": {"blue": {"image": BLUE_IMAGE}, "green": {"image": GREEN_IMAGE, "restoreFrom": SNAPSHOT}},
    "snapshots": {SNAPSHOT: {"source": "data-percona-blue"}},
}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    section = copy.deepcopy(base)
    section.update(changes)
    return section


def plan(database: dict[str, Any]) -> mockrun.PlanResult:
    return run_components(raw_config(database, ZFS))


# -- phase 1: blue ------------------------------------------------------------------------------


def test_blue_is_a_statefulset_of_one_on_its_own_retained_pvc() -> None:
    result = plan(BLUE_ONLY)
    (statefulset,) = kube_objects(result, "StatefulSet")
    (claim,) = kube_objects(result, "PersistentVolumeClaim")
    assert statefulset.inputs["metadata"]["name"] == "percona-blue"
    assert statefulset.inputs["spec"]["replicas"] == 1
    pod = statefulset.inputs["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-percona-blue"}}
    assert claim.inputs["metadata"]["name"] == "data-percona-blue"
    assert claim.inputs["spec"]["storageClassName"] == "scaleplane-snapshot"
    assert "dataSource" not in claim.inputs["spec"]
    assert claim.retain_on_delete
    assert pod["containers"][0]["image"] == BLUE_IMAGE


def test_blue_has_probes_resources_and_runs_as_mysql_not_root() -> None:
    (statefulset,) = kube_objects(plan(BLUE_ONLY), "StatefulSet")
    pod = statefulset.inputs["spec"]["template"]["spec"]
    (mysql,) = pod["containers"]
    assert mysql["livenessProbe"]["exec"]["command"][:2] == ["mysqladmin", "ping"]
    assert mysql["startupProbe"]["exec"]["command"][:2] == ["mysqladmin", "ping"]
    readiness = " ".join(mysql["readinessProbe"]["exec"]["command"])
    assert "SELECT 1" in readiness and "mysql " in readiness
    assert mysql["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert mysql["resources"]["limits"] == {"memory": "2Gi"}
    assert pod["securityContext"]["runAsUser"] == 1001 and pod["securityContext"]["fsGroup"] == 1001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert mysql["securityContext"]["allowPrivilegeEscalation"] is False
    assert mysql["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_passwords_are_generated_and_only_referenced_from_the_secret() -> None:
    result = plan(BLUE_ONLY)
    passwords = [r for r in result.resources if r.type == "random:index/randomPassword:RandomPassword"]
    assert len(passwords) == 2 and all(p.inputs["length"] >= 32 for p in passwords)
    secret = one(result, "Secret")
    assert "stringData" in secret.secret_paths  # the whole map is secret in state and in previews
    assert secret.retain_on_delete  # kept beside the retained volumes, whose users it logs in as
    assert "fake-password" not in json.dumps(result.outputs)
    assert secret.inputs["stringData"] == {
        "root-password": "fake-password-of-database-root-password",
        "app-password": "fake-password-of-database-app-password",
        # mysql client option files: the password is never in MYSQL_PWD or on a command line.
        "client-root.cnf": "[client]\nuser=root\npassword=fake-password-of-database-root-password\n",
        "client-app.cnf": "[client]\nuser=app\npassword=fake-password-of-database-app-password\n",
    }
    # No generated password appears in plain text anywhere else.
    for resource in result.resources:
        if resource.type.startswith("kubernetes:") and resource is not secret:
            assert "fake-password" not in json.dumps(resource.inputs), resource.name
    (statefulset,) = kube_objects(result, "StatefulSet")
    env = {e["name"]: e for e in statefulset.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name, key in (("MYSQL_ROOT_PASSWORD", "root-password"), ("MYSQL_PASSWORD", "app-password")):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "percona-credentials", "key": key}


def test_the_percona_service_selects_the_live_colour_on_port_3306() -> None:
    service = one(plan(BLUE_ONLY), "Service", "percona")
    assert service.inputs["spec"]["selector"] == {"app": "blue", "app.kubernetes.io/part-of": "percona"}
    assert service.inputs["spec"]["ports"][0]["port"] == 3306


def test_the_namespace_is_retained_because_deleting_it_would_delete_the_pvcs() -> None:
    namespace = one(plan(BLUE_ONLY), "Namespace", "percona")
    assert namespace.retain_on_delete
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# -- phase 2: green restored from a snapshot of blue --------------------------------------------


def test_green_is_restored_from_a_retained_snapshot_of_blues_pvc() -> None:
    result = plan(BOTH)
    snapshot = one(result, "VolumeSnapshot")
    assert snapshot.type == "kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshot"
    assert snapshot.inputs["metadata"] == {
        "name": SNAPSHOT,
        "namespace": "percona",
        "labels": {"app.kubernetes.io/managed-by": "scaleplane", "app.kubernetes.io/part-of": "percona"},
    }
    assert snapshot.inputs["spec"] == {
        "volumeSnapshotClassName": "scaleplane-retain",
        "source": {"persistentVolumeClaimName": "data-percona-blue"},
    }
    assert snapshot.retain_on_delete
    green_claim = one(result, "PersistentVolumeClaim", f"data-percona-green-from-{SNAPSHOT}")
    assert green_claim.inputs["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": SNAPSHOT,
    }
    assert green_claim.retain_on_delete
    # Order: blue running (its PVC bound, mysqld initialised), then the snapshot of its PVC, then
    # green's PVC, then green's StatefulSet.
    blue_claim = one(result, "PersistentVolumeClaim", "data-percona-blue")
    blue = one(result, "StatefulSet", "percona-blue")
    assert blue.urn in snapshot.dependencies
    assert blue_claim.urn in blue.dependencies
    assert snapshot.urn in green_claim.dependencies
    green = one(result, "StatefulSet", "percona-green")
    assert green.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == GREEN_IMAGE
    assert green.inputs["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == (
        f"data-percona-green-from-{SNAPSHOT}"
    )


def test_each_colour_selects_only_its_own_pods() -> None:
    result = plan(BOTH)
    for colour in ("blue", "green"):
        statefulset = one(result, "StatefulSet", f"percona-{colour}")
        selector = statefulset.inputs["spec"]["selector"]["matchLabels"]
        assert selector["app"] == colour
        assert statefulset.inputs["spec"]["template"]["metadata"]["labels"]["app"] == colour
        peers = one(result, "Service", f"percona-{colour}")
        assert peers.inputs["spec"]["clusterIP"] == "None"
        assert peers.inputs["spec"]["selector"] == selector


@pytest.mark.parametrize(
    "database",
    [
        BLUE_ONLY,
        BOTH,
        with_changes(BOTH, active="green"),
        with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE}),
    ],
    ids=["blue", "both", "green-live", "load-generator"],
)
def test_every_object_is_valid_against_the_kubernetes_schema_or_its_crd(database: dict[str, Any]) -> None:
    objects = kube_objects(plan(database))
    assert len(objects) >= 6
    for resource in objects:
        validate_object(resource.inputs)


# -- the switch ---------------------------------------------------------------------------------


def comparable(resource: mockrun.PlannedResource) -> dict[str, Any]:
    return {
        "urn": resource.urn,
        "inputs": resource.inputs,
        "parent": resource.parent,
        "provider": resource.provider,
        "protect": resource.protect,
        "retain_on_delete": resource.retain_on_delete,
        "dependencies": sorted(resource.dependencies),
        "ignore_changes": resource.ignore_changes,
        "delete_before_replace": resource.delete_before_replace,
        "secret_paths": sorted(resource.secret_paths),
    }


@pytest.mark.parametrize("stack", ["local", "prod"])
def test_switching_changes_nothing_in_the_stack_but_the_services_selector(stack: str) -> None:
    storage = json.loads(raw_config(None, None, stack)["scaleplane:storage"])
    both = with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE})
    blue = run_program(raw_config(both, storage, stack), stack)
    green = run_program(raw_config(with_changes(both, active="green"), storage, stack), stack)
    before = {r.urn: comparable(r) for r in blue.resources}
    after = {r.urn: comparable(r) for r in green.resources}
    assert set(before) == set(after)
    changed = sorted(urn for urn in before if before[urn] != after[urn])
    (service_urn,) = [u for u in before if u.endswith(f"{stack}-database-service")]
    assert changed == [service_urn]
    selector_before = before[service_urn]["inputs"]["spec"].pop("selector")
    selector_after = after[service_urn]["inputs"]["spec"].pop("selector")
    assert before[service_urn] == after[service_urn]
    assert (selector_before["app"], selector_after["app"]) == ("blue", "green")


# -- retiring -------------------------------------------------------------------------------------


def test_a_retired_colour_runs_nothing_but_its_snapshot_stays_declared() -> None:
    retired = with_changes(BOTH, active="green")
    retired["colours"]["blue"]["retired"] = True
    result = plan(retired)
    assert [r.inputs["metadata"]["name"] for r in kube_objects(result, "StatefulSet")] == ["percona-green"]
    assert [r.inputs["metadata"]["name"] for r in kube_objects(result, "PersistentVolumeClaim")] == [
        f"data-percona-green-from-{SNAPSHOT}"
    ]
    snapshot = one(result, "VolumeSnapshot")
    assert snapshot.inputs["spec"]["source"]["persistentVolumeClaimName"] == "data-percona-blue"
    # blue's PVC is retained in the cluster, no longer in the stack: nothing to wait for.
    assert not [d for d in snapshot.dependencies if "PersistentVolumeClaim" in d]


def test_a_colour_restored_again_gets_a_new_claim_beside_its_retained_one() -> None:
    assert claim_name("percona", "blue", None) == "data-percona-blue"
    assert claim_name("percona", "blue", "green-1") == "data-percona-blue-from-green-1"
    database = {
        "active": "green",
        "colours": {
            "green": {"image": GREEN_IMAGE, "restoreFrom": SNAPSHOT},
            "blue": {"image": GREEN_IMAGE, "restoreFrom": "green-20261201000000"},
        },
        "snapshots": {
            SNAPSHOT: {"source": "data-percona-blue"},
            "green-20261201000000": {"source": f"data-percona-green-from-{SNAPSHOT}"},
        },
    }
    result = plan(database)
    names = sorted(r.inputs["metadata"]["name"] for r in kube_objects(result, "PersistentVolumeClaim"))
    assert names == ["data-percona-blue-from-green-20261201000000", f"data-percona-green-from-{SNAPSHOT}"]


# -- the load generator -----------------------------------------------------------------------------


def test_load_generator_is_off_by_default() -> None:
    assert kube_objects(plan(BOTH), "Job") == []


def test_load_generator_runs_the_playbook_script_bounded_with_generated_credentials() -> None:
    database = with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE})
    result = plan(database)
    job_resource = one(result, "Job")
    statefulsets = {r.urn for r in kube_objects(result, "StatefulSet")}
    assert len(statefulsets) == 2 and statefulsets <= set(job_resource.dependencies)
    job = job_resource.inputs
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 360
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == LOADGEN_IMAGE
    script = container["command"][-1]
    assert "MySQLLoadGenerate.sh" in script and "timelimit -t 300" in script
    assert "percona.percona.svc.cluster.local" in script
    assert "k8sDem0" not in script.replace("-pk8sDem0|", "").replace("grep -q k8sDem0", "")
    assert container["env"] == [{"name": "CLIENT_OPTIONS", "value": "/etc/scaleplane/client/client-app.cnf"}]
    assert "MYSQL_PWD" not in json.dumps(job)
    client = {v["name"]: v for v in pod["volumes"]}["client"]["secret"]
    assert client["items"] == [{"key": "client-app.cnf", "path": "client-app.cnf"}] and client["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 65534
    assert container["resources"]["requests"]["cpu"] == "100m"
    assert pod["restartPolicy"] == "Never"


PLAYBOOK_LIKE_SCRIPT = """#! /bin/sh
mysql -uroot -pk8sDem0 -h $pod_ip -e "CREATE DATABASE Inventory;"
while true; do mysql -uroot -pk8sDem0 -h $pod_ip -e "INSERT INTO Hardware select * FROM Hardware;" Inventory; done
"""


def _prepare(script: str, playbook_script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the Job's preparation (everything before it starts the generator) on `playbook_script`."""
    (tmp_path / "MySQLLoadGenerate.sh").write_text(playbook_script)  # in the image's working directory
    (tmp_path / "tmp").mkdir(exist_ok=True)
    preparation = script.split("set +e")[0].replace("/tmp/", f"{tmp_path}/tmp/")
    return subprocess.run(
        ["bash", "-c", preparation],
        cwd=tmp_path,
        env={"CLIENT_OPTIONS": "/etc/scaleplane/client/client-app.cnf", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_load_generator_logs_in_as_the_app_user_and_copies_bounded_rounds(tmp_path: Path) -> None:
    database = with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE})
    script = one(plan(database), "Job").inputs["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert _prepare(script, PLAYBOOK_LIKE_SCRIPT, tmp_path).returncode == 0
    rewritten = (tmp_path / "tmp" / "MySQLLoadGenerate.sh").read_text()
    assert (
        "k8sDem0" not in rewritten
        and "mysql --defaults-extra-file=/etc/scaleplane/client/client-app.cnf -h $pod_ip" in rewritten
    )
    # The doubling INSERT ... SELECT copies a bounded round instead (the volume never fills).
    assert "INSERT INTO Hardware select * FROM Hardware LIMIT 1000;" in rewritten
    # A script that no longer reads as expected stops the Job instead of running unmodified.
    unexpected = PLAYBOOK_LIKE_SCRIPT.replace("-uroot -pk8sDem0", "-u root -pk8sDem0")
    failed = _prepare(script, unexpected, tmp_path)
    assert failed.returncode != 0 and "fixed password" in failed.stderr
    unbounded = PLAYBOOK_LIKE_SCRIPT.replace("FROM Hardware;", "FROM Hardware ;")
    assert _prepare(script, unbounded, tmp_path).returncode != 0


# -- bad settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        (with_changes(BLUE_ONLY, active="green"), "active: colour 'green' is not defined"),
        (with_changes(BLUE_ONLY, active="purple"), "scaleplane:database.active"),
        (
            {"active": "blue", "colours": {"blue": {"retired": True}}},
            "colours.blue.retired: blue is the live colour",
        ),
        (
            with_changes(BOTH, snapshots={SNAPSHOT: {"source": "data-mongodb-0"}}),
            f"snapshots.{SNAPSHOT}.source: 'data-mongodb-0' is not a PVC of this database",
        ),
        (
            with_changes(BOTH, snapshots={}),
            f"colours.green.restoreFrom: snapshot '{SNAPSHOT}' is not defined",
        ),
        (
            with_changes(BOTH, snapshots={SNAPSHOT: {"source": f"data-percona-green-from-{SNAPSHOT}"}}),
            "a volume cannot be restored from itself",
        ),
        (
            {
                "active": "blue",
                "colours": {"blue": {"restoreFrom": "g-1"}, "green": {"restoreFrom": "b-1"}},
                "snapshots": {
                    "g-1": {"source": "data-percona-green-from-b-1"},
                    "b-1": {"source": "data-percona-blue-from-g-1"},
                },
            },
            "neither volume could ever be created",
        ),
        (
            with_changes(BOTH, colours={"blue": {"image": "percona/percona-server:latest"}}),
            "scaleplane:database.colours.blue.image",
        ),
        (
            with_changes(BOTH, loadGenerator={"enabled": True}),
            "loadGenerator.image is required",
        ),
        (with_changes(BOTH, colour="blue"), "scaleplane:database.colour: unknown key"),
    ],
)
def test_bad_database_settings_are_refused_naming_the_key(database: dict[str, Any], expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings.from_config(raw_config(database, ZFS))
    assert "scaleplane:database" in str(error.value)
    assert expected in str(error.value)


def test_a_database_needs_snapshot_storage() -> None:
    raw = raw_config(BLUE_ONLY, None)
    raw.pop("scaleplane:storage", None)
    with pytest.raises(SettingsError, match="scaleplane:storage is not"):
        settings.from_config(raw)


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    active=st.sampled_from(["blue", "green"]),
    colours=st.dictionaries(
        st.sampled_from(["blue", "green"]),
        st.fixed_dictionaries({}, optional={"retired": st.booleans(), "restoreFrom": st.sampled_from(["s-1", "s-2"])}),
        min_size=1,
    ),
    sources=st.dictionaries(
        st.sampled_from(["s-1", "s-2"]),
        st.sampled_from(["data-percona-blue", "data-percona-green", "data-percona-green-from-s-1", "data-x"]),
    ),
)
def test_accepted_settings_always_name_a_live_running_colour_and_known_sources(
    active: str, colours: dict[str, Any], sources: dict[str, str]
) -> None:
    database = {"active": active, "colours": colours, "snapshots": {k: {"source": v} for k, v in sources.items()}}
    try:
        accepted = settings.from_config(raw_config(database, ZFS)).database
    except SettingsError as error:
        assert all("scaleplane:database" in problem for problem in error.problems)
        return
    assert accepted is not None
    assert accepted.active in accepted.serving
    for spec in accepted.colours.values():
        assert spec.restore_from is None or spec.restore_from in accepted.snapshots
    assert all(s.source in accepted.known_claims() for s in accepted.snapshots.values())


@pytest.mark.parametrize("stack", ["local", "prod"])
def test_every_phase_passes_the_policy_pack_without_a_mandatory_violation(stack: str) -> None:
    from deploy import plan as offline_plan

    storage = json.loads(raw_config(None, None, stack)["scaleplane:storage"])
    database = with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE})
    raw = raw_config(database, storage, stack)
    result = run_program(raw, stack)
    assert kube_objects(result, "Job") and kube_objects(result, "VolumeSnapshot")
    violations = offline_plan.run_policies(result, settings.from_config(raw))
    mandatory = [f"{v.policy}: {v.message}" for v in violations if v.enforcement == "mandatory"]
    assert mandatory == []


# -- mysqld options, server_uuid of a restored colour ---------------------------------------------


def test_both_colours_run_with_gtids_binary_logging_durable_commits_and_their_own_server_id() -> None:
    result = plan(BOTH)
    seen = {}
    for colour in ("blue", "green"):
        options = one(result, "ConfigMap", f"percona-{colour}-mysqld")
        parsed = sqlfake.parse_options(options.inputs["data"]["scaleplane.cnf"])
        for name, value in {
            "gtid_mode": "ON",
            "enforce_gtid_consistency": "ON",
            "log_bin": "binlog",
            "sync_binlog": "1",
            "innodb_flush_log_at_trx_commit": "1",
        }.items():
            assert parsed[name] == value, (colour, name)
        seen[colour] = parsed["server_id"]
        pod = one(result, "StatefulSet", f"percona-{colour}").inputs["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["mysqld-options"]["configMap"]["name"] == f"percona-{colour}-mysqld"
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        # The Percona image's /etc/my.cnf includes /etc/my.cnf.d.
        assert mounts["mysqld-options"] == {
            "name": "mysqld-options",
            "mountPath": "/etc/my.cnf.d/scaleplane.cnf",
            "subPath": "scaleplane.cnf",
            "readOnly": True,
        }
    assert seen["blue"] != seen["green"]


def test_only_a_restored_colour_removes_the_copied_auto_cnf_before_mysqld_starts() -> None:
    result = plan(BOTH)
    blue = one(result, "StatefulSet", "percona-blue").inputs["spec"]["template"]["spec"]
    green = one(result, "StatefulSet", "percona-green").inputs["spec"]["template"]["spec"]
    assert blue["initContainers"] == []
    (init,) = green["initContainers"]
    assert init["image"] == GREEN_IMAGE
    assert init["env"] == [{"name": "CLAIM", "value": claim_name("percona", "green", SNAPSHOT)}]
    assert init["securityContext"]["runAsNonRoot"] is True and init["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }


def test_the_uuid_script_removes_auto_cnf_once_per_claim(tmp_path: Path) -> None:
    from components import bluegreen as component

    script = component.fresh_uuid_script().replace(component.DATA_MOUNT, str(tmp_path))
    datadir = tmp_path / "data"
    datadir.mkdir()

    def start(claim: str) -> None:
        subprocess.run(
            ["sh", "-c", script], env={"CLAIM": claim, "PATH": "/usr/bin:/bin"}, check=True, capture_output=True
        )

    (datadir / "auto.cnf").write_text("[auto]\nserver-uuid=source\n")
    start("data-percona-green-from-s1")
    assert not (datadir / "auto.cnf").exists(), "the source's server_uuid is not reused"
    (datadir / "auto.cnf").write_text("[auto]\nserver-uuid=green\n")  # mysqld generated its own
    start("data-percona-green-from-s1")
    assert (datadir / "auto.cnf").read_text() == "[auto]\nserver-uuid=green\n", "a restart keeps it"
    start("data-percona-blue-from-s2")  # this volume's snapshot, restored as another claim
    assert not (datadir / "auto.cnf").exists()


def test_the_readiness_probe_reads_the_password_from_an_option_file_not_mysql_pwd() -> None:
    result = plan(BLUE_ONLY)
    pod = one(result, "StatefulSet", "percona-blue").inputs["spec"]["template"]["spec"]
    (mysql,) = pod["containers"]
    command = mysql["readinessProbe"]["exec"]["command"]
    assert command[1] == "--defaults-extra-file=/etc/scaleplane/client/client-app.cnf"
    assert "MYSQL_PWD" not in json.dumps(pod)
    client = {v["name"]: v for v in pod["volumes"]}["client"]["secret"]
    assert client["secretName"] == "percona-credentials" and client["defaultMode"] == 0o440


def test_the_namespace_denies_by_default_and_opens_3306_only_to_its_clients() -> None:
    result = plan(with_changes(BOTH, loadGenerator={"enabled": True, "image": LOADGEN_IMAGE}))
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in kube_objects(result, "NetworkPolicy")}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    servers = policies["percona-clients-to-servers"]
    (ingress,) = servers["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 3306}]
    sources = [peer["podSelector"]["matchLabels"] for peer in ingress["from"]]
    job = one(result, "Job").inputs["spec"]["template"]["metadata"]["labels"]
    pods = {colour: one(result, "StatefulSet", f"percona-{colour}") for colour in ("blue", "green")}
    for labels in sources:  # each allowed source is the load generator or a colour, nothing wider
        matches = [
            who
            for who, pod_labels in [("job", job)]
            + [(c, s.inputs["spec"]["template"]["metadata"]["labels"]) for c, s in pods.items()]
            if labels.items() <= pod_labels.items()
        ]
        assert matches in (["job"], ["blue", "green"]), labels
    for statefulset in pods.values():
        assert (
            servers["podSelector"]["matchLabels"].items()
            <= statefulset.inputs["spec"]["template"]["metadata"]["labels"].items()
        )
    loadgen_egress = policies["percona-loadgen-egress"]["egress"]
    assert any(
        rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}] for rule in loadgen_egress
    )
    for who in ("servers", "loadgen"):
        (dns, mysql) = policies[f"percona-{who}-egress"]["egress"]
        assert mysql["ports"] == [{"protocol": "TCP", "port": 3306}]
        assert mysql["to"] == [{"podSelector": {"matchLabels": servers["podSelector"]["matchLabels"]}}]
    namespace = one(result, "Namespace", "percona").inputs["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
