"""`python -m deploy bluegreen`: the workflow's steps against a fake stack and a fake cluster.

The fake stack keeps the stack config as the Pulumi CLI does (`set --path` turns "true"/"false"
into booleans) and answers preview/up by running the real components under mocks: a preview
reports the resources whose inputs differ from the last `up`. The fake cluster follows what was
deployed: a snapshot copies its source volume's rows and binary logs, a restored PVC copies its
snapshot's, a starting pod opens a new binary log, and a read-only colour refuses writes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

import pytest
from bluegreen_helpers import BLUE_IMAGE, GREEN_IMAGE, raw_config, run_components
from pulumi import automation as auto

import settings
from deploy import bluegreen, cli
from deploy.bluegreen import USER_TABLES, KubectlProbe, Workflow, WorkflowError
from settings.database import DatabaseSettings

ZFS = {"driver": "zfs-localpv", "zfsLocalPv": {"poolName": "zfspv-pool"}}
START: dict[str, Any] = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
NOW = "20261126160000"


@dataclass
class Pod:
    claim: str
    image: str
    read_only: bool = False


@dataclass
class FakeCluster:
    """Volumes (claim -> table -> rows), snapshots and one pod per running colour."""

    volumes: dict[str, dict[str, int]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, int]] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    #: Polls before a new snapshot reports readyToUse.
    snapshot_delay: int = 2
    pending: dict[str, int] = field(default_factory=dict)
    #: Restores lose this many rows of every table (a broken copy, for the verification test).
    restore_loss: int = 0
    #: Binary log files (name -> bytes, oldest first) of each volume and each snapshot.
    binlogs: dict[str, dict[str, int]] = field(default_factory=dict)
    snapshot_binlogs: dict[str, dict[str, int]] = field(default_factory=dict)

    def deploy(self, db: DatabaseSettings) -> None:
        for name, spec in db.snapshots.items():
            if name not in self.snapshots:
                self.snapshots[name] = copy.deepcopy(self.volumes.get(spec.source, {}))
                self.snapshot_binlogs[name] = dict(self.binlogs.get(spec.source, {}))
                self.pending[name] = self.snapshot_delay
        for colour, spec in db.serving.items():
            claim = db.claim(colour)
            if claim not in self.volumes:
                source = self.snapshots[spec.restore_from] if spec.restore_from else {}
                self.volumes[claim] = {t: n - self.restore_loss for t, n in source.items()}
                self.binlogs[claim] = dict(self.snapshot_binlogs[spec.restore_from]) if spec.restore_from else {}
            pod = self.pods.get(colour)
            if pod is None or pod.claim != claim or pod.image != spec.image:
                self.start(colour, Pod(claim, spec.image))
        for colour in list(self.pods):
            if colour not in db.serving:
                del self.pods[colour]  # retired: the pod goes, its volume stays

    def start(self, colour: str, pod: Pod) -> None:
        """A new pod starts writable (no freeze survives a restart) and opens a new binary log."""
        self.pods[colour] = pod
        logs = self.binlogs.setdefault(pod.claim, {})
        logs[f"binlog.{len(logs) + 1:06d}"] = 157

    def write(self, colour: str, table: str, rows: int, *, update: bool = False) -> None:
        """INSERT `rows` rows, or UPDATE them (no row count changes): either way the binary log grows."""
        pod = self.pods[colour]
        if pod.read_only:
            raise PermissionError(f"{colour} is read-only")
        volume = self.volumes[pod.claim]
        volume[table] = volume.get(table, 0) + (0 if update else rows)
        logs = self.binlogs[pod.claim]
        logs[list(logs)[-1]] += 100 * rows


class FakeProbe:
    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.queries: list[tuple[str, str]] = []

    def snapshot_ready(self, namespace: str, name: str) -> bool:
        assert namespace == "percona"
        if name not in self.cluster.snapshots:
            return False
        self.cluster.pending[name] -= 1
        return self.cluster.pending[name] < 0

    def pod_ready(self, namespace: str, pod: str) -> bool:
        return pod.removeprefix("percona-").removesuffix("-0") in self.cluster.pods

    def query(self, namespace: str, pod: str, sql: str) -> list[list[str]]:
        colour = pod.removeprefix("percona-").removesuffix("-0")
        self.queries.append((colour, sql))
        target = self.cluster.pods[colour]
        data = self.cluster.volumes[target.claim]
        if sql == "SET SESSION lock_wait_timeout = 60; SET GLOBAL super_read_only = ON":
            target.read_only = True
            return []
        if sql == "SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF":
            target.read_only = False
            return []
        if sql == "SELECT 1":
            return [["1"]]
        if sql == "SELECT VERSION()":
            return [[target.image.rpartition(":")[2]]]
        if sql == "SELECT @@global.log_bin":
            return [["1"]]
        if sql == "SHOW BINARY LOGS":
            return [[name, str(size), "No"] for name, size in self.cluster.binlogs[target.claim].items()]
        if sql == USER_TABLES:
            return [table.split(".", 1) for table in sorted(data)]
        counted = re.findall(r"SELECT (\d+), COUNT\(\*\) FROM `((?:[^`]|``)+)`\.`((?:[^`]|``)+)`", sql)
        assert counted and len(counted) == sql.count("SELECT"), sql
        unquote = lambda name: name.replace("``", "`")  # noqa: E731
        return [[index, str(data[f"{unquote(schema)}.{unquote(table)}"])] for index, schema, table in counted]


class FakeStack:
    """An Automation API stack: config with `--path` semantics; preview/up run the components."""

    name = "local"

    def __init__(self, database: dict[str, Any], cluster: FakeCluster):
        self.raw = raw_config(database, ZFS)
        self.cluster = cluster
        self.deployed = run_components(self.raw)
        self.cluster.deploy(self.database())
        self.log: list[str] = []
        self.fail_up: Optional[Callable[[], bool]] = None

    def database(self) -> DatabaseSettings:
        db = settings.from_config(self.raw).database
        assert db is not None
        return db

    def section(self) -> dict[str, Any]:
        return json.loads(self.raw["scaleplane:database"])

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue:
        assert not path
        if key not in self.raw:
            raise auto.CommandError(
                auto.CommandResult(stdout="", stderr=f"error: configuration key '{key}' not found", code=255)
            )
        return auto.ConfigValue(value=self.raw[key], secret=False)

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        assert path, "the workflow sets values inside the section, by path"
        top, _, path = key.partition(".")
        parts = [quoted or plain for plain, quoted in re.findall(r'\.?([A-Za-z_$][A-Za-z0-9_$]*)|\["([^"]+)"\]', path)]
        assert "".join(f".{p}" if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", p) else f'["{p}"]' for p in parts) == (
            "." + path if not path.startswith("[") else path
        ), f"not a strict Pulumi property path: {key}"
        document = json.loads(self.raw[top])
        node = document
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        text = value.value
        # `pulumi config set --path`: "true"/"false" become booleans, integers numbers.
        node[parts[-1]] = {"true": True, "false": False}.get(text, int(text) if text.isdigit() else text)
        self.raw[top] = json.dumps(document)
        self.log.append(f"set {key}={text}")

    def _changes(self) -> list[tuple[str, str, str]]:
        planned = run_components(self.raw)
        before = {r.urn: r for r in self.deployed.resources}
        after = {r.urn: r for r in planned.resources}
        changes = [("create", after[u].type, u) for u in after if u not in before]
        changes += [("delete", before[u].type, u) for u in before if u not in after]
        changes += [("update", after[u].type, u) for u in after if u in before and after[u].inputs != before[u].inputs]
        return changes

    def preview(self, on_event: Optional[Callable[[Any], None]] = None, **_: Any) -> Any:
        changes = self._changes()
        self.log.append("preview " + ", ".join(f"{op} {urn.rpartition('::')[2]}" for op, _, urn in changes))
        for op, type_, urn in changes:
            meta = SimpleNamespace(op=op, type=type_, urn=urn, old=None, new=None)
            if on_event:
                on_event(
                    SimpleNamespace(
                        resource_pre_event=SimpleNamespace(metadata=meta),
                        res_outputs_event=None,
                        res_op_failed_event=None,
                        policy_event=None,
                        diagnostic_event=None,
                    )
                )
        return SimpleNamespace(change_summary={})

    def up(
        self, on_output: Optional[Callable[[str], None]] = None, target: Optional[list[str]] = None, **_: Any
    ) -> Any:
        if self.fail_up is not None and self.fail_up():
            raise RuntimeError("pulumi up failed (injected)")
        changes = [c for c in self._changes() if target is None or c[2] in target]
        self.log.append(
            ("up --target " if target else "up ")
            + ", ".join(f"{op} {urn.rpartition('::')[2]}" for op, _, urn in changes)
        )
        planned = run_components(self.raw)
        if target is None:
            self.deployed = planned
        else:  # only the targeted resources take their new state
            new = {r.urn: r for r in planned.resources if r.urn in target}
            resources = [new.pop(r.urn, r) for r in self.deployed.resources] + list(new.values())
            self.deployed = dataclasses.replace(self.deployed, resources=resources)
        self.cluster.deploy(self.database())
        if on_output:
            on_output(f"Resources: {len(changes)} changed\n")
        return SimpleNamespace(summary=SimpleNamespace(result="succeeded"))

    def outputs(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def cluster() -> FakeCluster:
    data = FakeCluster()
    data.volumes["data-percona-blue"] = {"Inventory.Hardware": 4096, "shop.orders": 17, "shop.it's `odd`": 2}
    return data


@pytest.fixture
def stack(cluster: FakeCluster) -> FakeStack:
    return FakeStack(START, cluster)


def workflow(
    stack: FakeStack,
    cluster: FakeCluster,
    lines: Optional[list[str]] = None,
    *,
    now: datetime.datetime = datetime.datetime(2026, 11, 26, 16, 0, 0),
) -> Workflow:
    """The workflow against fakes; `now` is the wall clock snapshot names are made from."""
    out = lines.append if lines is not None else (lambda _: None)
    return Workflow(stack, FakeProbe(cluster), out=out, sleep=lambda _: None, now=lambda: now)


def upgraded(stack: FakeStack, cluster: FakeCluster) -> None:
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)


# -- the upgrade ----------------------------------------------------------------------------------


def test_upgrade_snapshots_creates_verifies_and_switches(stack: FakeStack, cluster: FakeCluster) -> None:
    lines: list[str] = []
    workflow(stack, cluster, lines).upgrade("green", GREEN_IMAGE)
    section = stack.section()
    snapshot = f"blue-{NOW}"
    assert section["active"] == "green"
    assert section["snapshots"] == {snapshot: {"source": "data-percona-blue"}}
    assert section["colours"]["green"] == {"image": GREEN_IMAGE, "restoreFrom": snapshot}
    assert section["colours"]["blue"] == {"image": BLUE_IMAGE}
    # green holds every row of blue; blue stays, frozen, for rollback.
    assert cluster.volumes[f"data-percona-green-from-{snapshot}"] == cluster.volumes["data-percona-blue"]
    assert cluster.pods["blue"].read_only and not cluster.pods["green"].read_only
    steps = [line.split(":")[0] for line in lines if line.startswith("[")]
    assert steps == [
        "[1/6] preflight",
        "[2/6] freeze",
        "[3/6] snapshot",
        "[4/6] create",
        "[5/6] verify",
        "[6/6] switch",
    ]
    assert any("Inventory.Hardware: blue 4096 rows, green 4096 rows" in line for line in lines)
    # The switch's preview and up touched only the Service; the up was targeted at it.
    assert stack.log[-2:] == ["preview update database-service", "up --target update database-service"]


def test_the_snapshot_is_ready_before_green_is_created(stack: FakeStack, cluster: FakeCluster) -> None:
    probe = FakeProbe(cluster)
    polls: list[str] = []
    original = probe.snapshot_ready

    def ready(namespace: str, name: str) -> bool:
        result = original(namespace, name)
        polls.append(f"{name}:{result}:{'green' in cluster.pods}")
        return result

    probe.snapshot_ready = ready  # type: ignore[method-assign]
    Workflow(stack, probe, out=lambda _: None, sleep=lambda _: None).upgrade("green", GREEN_IMAGE)
    assert polls[-1].endswith(":True:False")  # ready, and green did not exist yet
    assert len(polls) == cluster.snapshot_delay + 1


def test_writes_stop_on_blue_before_the_snapshot(stack: FakeStack, cluster: FakeCluster) -> None:
    probe = FakeProbe(cluster)
    Workflow(stack, probe, out=lambda _: None, sleep=lambda _: None).upgrade("green", GREEN_IMAGE)
    blue = [sql for colour, sql in probe.queries if colour == "blue"]
    assert blue[0] == "SET SESSION lock_wait_timeout = 60; SET GLOBAL super_read_only = ON"
    with pytest.raises(PermissionError):
        cluster.write("blue", "Inventory.Hardware", 1)
    cluster.write("green", "Inventory.Hardware", 1)


def test_running_it_again_when_done_changes_no_config(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    before = copy.deepcopy(stack.raw)
    stack.log.clear()
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.raw == before
    assert not [entry for entry in stack.log if entry.startswith("set")]
    assert stack.log == ["preview "]  # the switch is deployed: nothing to do


def test_an_interrupted_upgrade_resumes_with_the_same_snapshot(stack: FakeStack, cluster: FakeCluster) -> None:
    ups = {"count": 0}

    def fail_second_up() -> bool:
        ups["count"] += 1
        return ups["count"] == 2  # the up that creates green

    stack.fail_up = fail_second_up
    with pytest.raises(RuntimeError, match="injected"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.section()["active"] == "blue"
    assert "green" not in cluster.pods
    stack.fail_up = None
    later = workflow(stack, cluster, now=datetime.datetime(2026, 11, 26, 17, 0, 0))
    later.upgrade("green", GREEN_IMAGE)
    section = stack.section()
    assert section["active"] == "green"
    assert list(section["snapshots"]) == [f"blue-{NOW}"]  # the first attempt's snapshot, not a second one


def test_interrupted_after_the_config_switch_the_rerun_deploys_it(stack: FakeStack, cluster: FakeCluster) -> None:
    original_up = stack.up
    calls = {"n": 0}

    def up(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # the switch's up
            raise RuntimeError("connection lost (injected)")
        return original_up(**kwargs)

    stack.up = up  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.section()["active"] == "green"
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"  # config switched, cluster not yet
    stack.up = original_up  # type: ignore[method-assign]
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "green"


def test_verification_failure_keeps_blue_live(stack: FakeStack, cluster: FakeCluster) -> None:
    cluster.restore_loss = 1
    with pytest.raises(WorkflowError, match="does not hold the same rows as blue") as error:
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert "Inventory.Hardware" in str(error.value)
    assert "blue stays read-only" in str(error.value) and cluster.pods["blue"].read_only
    assert stack.section()["active"] == "blue"
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"


def test_an_update_on_blue_after_the_snapshot_is_caught_though_row_counts_match(
    stack: FakeStack, cluster: FakeCluster
) -> None:
    ups = {"count": 0}

    def blue_restarts_and_takes_an_update() -> bool:
        ups["count"] += 1
        if ups["count"] == 2:  # the up that creates green: blue's pod restarts, so its freeze lapses
            cluster.start("blue", Pod("data-percona-blue", BLUE_IMAGE))
            cluster.write("blue", "shop.orders", 5, update=True)
        return False

    stack.fail_up = blue_restarts_and_takes_an_update
    lines: list[str] = []
    with pytest.raises(WorkflowError, match="blue took writes after the snapshot") as error:
        workflow(stack, cluster, lines).upgrade("green", GREEN_IMAGE)
    assert "--retire green" in str(error.value)
    assert any("shop.orders: blue 17 rows, green 17 rows" in line for line in lines)  # counts cannot tell
    assert stack.section()["active"] == "blue"
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"


def test_a_stale_snapshot_reused_after_an_abandoned_upgrade_is_refused_then_replaced(
    stack: FakeStack, cluster: FakeCluster
) -> None:
    stale = f"blue-{NOW}"
    cluster.snapshot_delay = 10_000
    clock = iter(range(0, 10_000, 5))
    first = Workflow(
        stack,
        FakeProbe(cluster),
        out=lambda _: None,
        sleep=lambda _: None,
        clock=lambda: next(clock),
        now=lambda: datetime.datetime(2026, 11, 26, 16, 0, 0),
        snapshot_timeout=60,
    )
    with pytest.raises(WorkflowError, match="not readyToUse"):
        first.upgrade("green", GREEN_IMAGE)
    workflow(stack, cluster).rollback()  # abandon: the freeze is lifted, blue takes writes again
    cluster.write("blue", "shop.orders", 1, update=True)
    cluster.pending[stale] = 0  # the old snapshot becomes ready, without that update in it
    with pytest.raises(WorkflowError, match="blue took writes after the snapshot"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.section()["colours"]["green"]["restoreFrom"] == stale
    assert stack.section()["active"] == "blue"
    # The way out the error names: retire green, upgrade again from a new snapshot.
    workflow(stack, cluster).retire("green")
    later = workflow(stack, cluster, now=datetime.datetime(2026, 11, 26, 17, 0, 0))
    later.upgrade("green", GREEN_IMAGE)
    section = stack.section()
    assert section["active"] == "green"
    assert section["colours"]["green"]["restoreFrom"] == "blue-20261126170000"
    assert cluster.binlogs["data-percona-blue"]["binlog.000001"] == 157 + 100


def test_the_switch_is_undone_when_the_preview_shows_more_than_the_service(
    stack: FakeStack, cluster: FakeCluster
) -> None:
    wf = workflow(stack, cluster)
    original = stack.set_config

    def sneak_in_a_change(key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        original(key, value, path=path)
        if key.endswith(".active") and value.value == "green":
            section = stack.section()
            section["storageSize"] = "20Gi"  # someone else's pending edit
            stack.raw["scaleplane:database"] = json.dumps(section)

    stack.set_config = sneak_in_a_change  # type: ignore[method-assign]
    with pytest.raises(WorkflowError, match="would not change only the percona Service") as error:
        wf.upgrade("green", GREEN_IMAGE)
    assert "data-percona-blue" in str(error.value) or "blue-data" in str(error.value)
    assert stack.section()["active"] == "blue"
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"


def test_an_up_that_would_delete_something_stateful_on_the_side_is_refused(cluster: FakeCluster) -> None:
    database = {**START, "snapshots": {"green-old": {"source": "data-percona-green"}}}
    stack = FakeStack(database, cluster)
    original = stack.set_config

    def sneak_in_a_deletion(key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        original(key, value, path=path)
        if key.endswith(".restoreFrom"):
            section = stack.section()
            del section["snapshots"]["green-old"]  # someone else's pending edit
            stack.raw["scaleplane:database"] = json.dumps(section)

    stack.set_config = sneak_in_a_deletion  # type: ignore[method-assign]
    with pytest.raises(bluegreen.DataLossRefusedError, match="would also delete") as error:
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert "database-snapshot-green-old" in str(error.value) and "blue stays read-only" in str(error.value)
    assert error.value.exit_code == bluegreen.EXIT_REFUSED
    assert "green" not in cluster.pods  # the create step's up never ran
    ups = [entry for entry in stack.log if entry.startswith("up")]
    assert ups == [f"up create database-snapshot-blue-{NOW}"]


def test_a_new_colour_needs_an_image(stack: FakeStack, cluster: FakeCluster) -> None:
    with pytest.raises(WorkflowError, match="--image is required"):
        workflow(stack, cluster).upgrade("green")
    assert stack.log == []


def test_a_green_with_its_own_data_is_not_upgraded_into(cluster: FakeCluster) -> None:
    database = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}, "green": {"image": GREEN_IMAGE}}}
    cluster.volumes["data-percona-green"] = {"Inventory.Hardware": 1}
    stack = FakeStack(database, cluster)
    with pytest.raises(WorkflowError, match="Retire it first"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.log == []


def test_a_snapshot_that_never_becomes_ready_stops_the_upgrade(stack: FakeStack, cluster: FakeCluster) -> None:
    cluster.snapshot_delay = 10_000
    clock = iter(range(0, 10_000, 5))
    wf = Workflow(
        stack,
        FakeProbe(cluster),
        out=lambda _: None,
        sleep=lambda _: None,
        clock=lambda: next(clock),
        snapshot_timeout=60,
    )
    with pytest.raises(WorkflowError, match="not readyToUse after 60 s"):
        wf.upgrade("green", GREEN_IMAGE)
    assert "green" not in stack.section()["colours"]


# -- rollback and retire ----------------------------------------------------------------------------


def test_rollback_switches_back_and_freezes_green(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    cluster.write("green", "shop.orders", 3)
    lines: list[str] = []
    workflow(stack, cluster, lines).rollback()
    assert stack.section()["active"] == "blue"
    assert not cluster.pods["blue"].read_only and cluster.pods["green"].read_only
    assert any("warning: shop.orders: green 20 rows, blue 17 rows" in line for line in lines)
    assert stack.log[-2:] == ["preview update database-service", "up --target update database-service"]
    cluster.write("blue", "shop.orders", 1)


def test_rollback_without_a_predecessor_lifts_the_freeze_only(stack: FakeStack, cluster: FakeCluster) -> None:
    cluster.pods["blue"].read_only = True  # an upgrade stopped after the freeze
    workflow(stack, cluster).rollback()
    assert not cluster.pods["blue"].read_only
    assert stack.section()["active"] == "blue"
    assert stack.log == ["preview "]  # no config change; the deployed state already agrees


def test_a_rollback_interrupted_before_its_up_is_deployed_by_the_rerun(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    original_up = stack.up

    def lost(**_: Any) -> Any:
        raise RuntimeError("connection lost (injected)")

    stack.up = lost  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        workflow(stack, cluster).rollback()
    stack.up = original_up  # type: ignore[method-assign]
    assert stack.section()["active"] == "blue"
    assert cluster.pods["green"].read_only and not cluster.pods["blue"].read_only
    workflow(stack, cluster).rollback()
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"


def test_a_rollback_interrupted_before_its_freeze_freezes_green_on_the_rerun(
    stack: FakeStack, cluster: FakeCluster
) -> None:
    upgraded(stack, cluster)
    probe = FakeProbe(cluster)
    original = probe.query

    def kubectl_fails_on_the_freeze(namespace: str, pod: str, sql: str) -> list[list[str]]:
        if "super_read_only = ON" in sql:
            raise bluegreen.ProbeError("kubectl exec failed (injected)")
        return original(namespace, pod, sql)

    probe.query = kubectl_fails_on_the_freeze  # type: ignore[method-assign]
    with pytest.raises(bluegreen.ProbeError):
        Workflow(stack, probe, out=lambda _: None, sleep=lambda _: None).rollback()
    assert stack.section()["active"] == "blue" and not cluster.pods["green"].read_only  # still selected
    workflow(stack, cluster).rollback()
    assert cluster.pods["green"].read_only and not cluster.pods["blue"].read_only
    service = [r for r in stack.deployed.resources if r.name == "database-service"][0]
    assert service.inputs["spec"]["selector"]["app"] == "blue"


def test_an_upgrade_resumed_after_a_rollback_froze_green_makes_green_writable(
    stack: FakeStack, cluster: FakeCluster
) -> None:
    probe = FakeProbe(cluster)
    original = probe.query

    def green_does_not_answer_once(namespace: str, pod: str, sql: str) -> list[list[str]]:
        if pod == "percona-green-0" and sql == "SELECT 1":
            probe.query = original  # type: ignore[method-assign]
            raise bluegreen.ProbeError("kubectl exec failed (injected)")
        return original(namespace, pod, sql)

    probe.query = green_does_not_answer_once  # type: ignore[method-assign]
    with pytest.raises(bluegreen.ProbeError):
        Workflow(stack, probe, out=lambda _: None, sleep=lambda _: None).upgrade("green", GREEN_IMAGE)
    workflow(stack, cluster).rollback()  # lifts blue's freeze; freezes green, restored from blue
    assert cluster.pods["green"].read_only and not cluster.pods["blue"].read_only
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)  # resumes into the same green
    assert stack.section()["active"] == "green"
    assert not cluster.pods["green"].read_only and cluster.pods["blue"].read_only
    cluster.write("green", "shop.orders", 1)


def test_a_refused_rollback_changes_no_freeze(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    stack.raw["scaleplane:database"] = json.dumps({**stack.section(), "storageSize": "30Gi"})  # undeployed edit
    with pytest.raises(bluegreen.SwitchRefusedError):
        workflow(stack, cluster).rollback()
    assert not cluster.pods["green"].read_only and cluster.pods["blue"].read_only
    assert stack.section()["active"] == "green"


def test_retiring_the_live_colour_is_refused_before_anything_changes(stack: FakeStack, cluster: FakeCluster) -> None:
    lines: list[str] = []
    args = argparse.Namespace(
        stack="local",
        to=None,
        rollback=False,
        retire="blue",
        image=None,
        context=None,
        kubeconfig=None,
        snapshot_timeout=900.0,
    )
    code = bluegreen.run(
        args,
        stack_factory=lambda _: stack,
        probe_factory=lambda *_: FakeProbe(cluster),
        out=lines.append,
        sleep=lambda _: None,
    )
    assert code == bluegreen.EXIT_USAGE
    assert "scaleplane:database" in lines[-1] and "colours.blue.retired: blue is the live colour" in lines[-1]
    assert not [entry for entry in stack.log if entry.startswith(("set", "up"))]


def test_retiring_the_old_colour_keeps_its_volume(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    workflow(stack, cluster).retire("blue")
    assert stack.section()["colours"]["blue"]["retired"] is True
    assert "blue" not in cluster.pods
    assert cluster.volumes["data-percona-blue"]["Inventory.Hardware"] == 4096
    kinds = {
        r.inputs.get("kind") + "/" + r.inputs["metadata"]["name"]
        for r in stack.deployed.resources
        if r.is_kubernetes_object
    }
    assert "StatefulSet/percona-blue" not in kinds and "PersistentVolumeClaim/data-percona-blue" not in kinds


def test_a_retired_colour_can_be_upgraded_into_again_on_a_new_volume(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    workflow(stack, cluster).retire("blue")
    cluster.write("green", "shop.orders", 5)
    later = workflow(stack, cluster, now=datetime.datetime(2026, 12, 1, 0, 0, 0))
    later.upgrade("blue", "docker.io/percona/percona-server:8.0.46-37.1")
    section = stack.section()
    assert section["active"] == "blue"
    assert section["colours"]["blue"] == {
        "image": "docker.io/percona/percona-server:8.0.46-37.1",
        "restoreFrom": "green-20261201000000",
        "retired": False,
    }
    assert cluster.volumes["data-percona-blue-from-green-20261201000000"]["shop.orders"] == 22
    assert cluster.volumes["data-percona-blue"]["shop.orders"] == 17  # the retained old volume, untouched


# -- the command line and kubectl ----------------------------------------------------------------


def test_the_command_is_registered_with_the_cli() -> None:
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "green", "--image", GREEN_IMAGE])
    assert args.handler is bluegreen.run
    assert (args.stack, args.to, args.image, args.rollback) == ("prod", "green", GREEN_IMAGE, False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "purple"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "green", "--rollback"])


def test_cli_run_reports_a_failed_verification_with_exit_code_1(stack: FakeStack, cluster: FakeCluster) -> None:
    cluster.restore_loss = 2
    lines: list[str] = []
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--to", "green", "--image", GREEN_IMAGE])
    code = bluegreen.run(
        args,
        stack_factory=lambda _: stack,
        probe_factory=lambda *_: FakeProbe(cluster),
        out=lines.append,
        sleep=lambda _: None,
    )
    assert code == bluegreen.EXIT_FAILED
    assert lines[-1].startswith("bluegreen: stopped:")


def test_the_probe_follows_the_stacks_existing_cluster(stack: FakeStack) -> None:
    probe = bluegreen.probe_for(stack, None, None)
    assert isinstance(probe, KubectlProbe) and probe.context == "kind-scaleplane"
    assert bluegreen.probe_for(stack, "other", None).context == "other"  # type: ignore[attr-defined]


def test_kubectl_probe_keeps_the_password_inside_the_pod() -> None:
    commands: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        if "exec" in command:
            return subprocess.CompletedProcess(command, 0, "Inventory.Hardware\t12\n", "")
        if "volumesnapshots.snapshot.storage.k8s.io" in command:
            return subprocess.CompletedProcess(command, 0, "true|", "")
        return subprocess.CompletedProcess(command, 0, "True", "")

    probe = KubectlProbe("kind-scaleplane", None, run=run)
    assert probe.query("percona", "percona-blue-0", "SELECT 1") == [["Inventory.Hardware", "12"]]
    assert probe.snapshot_ready("percona", "blue-1") is True
    assert probe.pod_ready("percona", "percona-blue-0") is True
    exec_command = commands[0]
    assert exec_command[:3] == ["kubectl", "--context", "kind-scaleplane"]
    assert exec_command[exec_command.index("exec") + 1] == "percona-blue-0"
    assert exec_command[-1] == "SELECT 1"
    assert '"$MYSQL_ROOT_PASSWORD"' in exec_command[-3]  # expanded by the pod's shell, not here


def test_kubectl_probe_reports_a_failed_snapshot() -> None:
    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 0, "false|snapshot controller: volume not found", "")

    with pytest.raises(bluegreen.ProbeError, match="volume not found"):
        KubectlProbe(None, None, run=run).snapshot_ready("percona", "blue-1")


def test_kubectl_failures_surface_as_probe_errors() -> None:
    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "error: pods not found")

    with pytest.raises(bluegreen.ProbeError, match="pods not found"):
        KubectlProbe(None, None, run=run).pod_ready("percona", "percona-blue-0")


def test_each_write_leaves_a_config_that_restores_from_the_snapshot(stack: FakeStack, cluster: FakeCluster) -> None:
    upgraded(stack, cluster)
    writes = [entry for entry in stack.log if entry.startswith("set")]
    snapshot = f"blue-{NOW}"
    assert writes == [
        f'set scaleplane:database.snapshots["{snapshot}"].source=data-percona-blue',
        f"set scaleplane:database.colours.green.restoreFrom={snapshot}",
        f"set scaleplane:database.colours.green.image={GREEN_IMAGE}",
        "set scaleplane:database.active=green",
    ]


def test_a_refused_switch_exits_with_the_refused_code(stack: FakeStack, cluster: FakeCluster) -> None:
    stack.raw["scaleplane:database"] = json.dumps({**stack.section(), "storageSize": "20Gi"})  # undeployed edit
    lines: list[str] = []
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--to", "green", "--image", GREEN_IMAGE])
    code = bluegreen.run(
        args,
        stack_factory=lambda _: stack,
        probe_factory=lambda *_: FakeProbe(cluster),
        out=lines.append,
        sleep=lambda _: None,
    )
    # The snapshot up deployed the pending edit too; the switch itself then found only the Service.
    assert code == bluegreen.EXIT_OK, lines[-1]
    stack.raw["scaleplane:database"] = json.dumps({**stack.section(), "storageSize": "30Gi"})
    code = bluegreen.run(
        cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--rollback"]),
        stack_factory=lambda _: stack,
        probe_factory=lambda *_: FakeProbe(cluster),
        out=lines.append,
        sleep=lambda _: None,
    )
    assert code == bluegreen.EXIT_REFUSED
    assert "nothing was deployed" in lines[-1]
    assert stack.section()["active"] == "green"


def test_a_kubeconfig_output_becomes_a_private_file_removed_afterwards(stack: FakeStack) -> None:
    del stack.raw["scaleplane:existingCluster"]
    stack.outputs = lambda: {"kubeconfig": auto.OutputValue(value="apiVersion: v1\nkind: Config\n", secret=True)}  # type: ignore[method-assign]
    probe = bluegreen.probe_for(stack, None, None)
    assert probe.kubeconfig is not None
    import os
    import stat

    assert stat.S_IMODE(os.stat(probe.kubeconfig).st_mode) == 0o600
    path = probe.kubeconfig
    probe.close()
    assert not os.path.exists(path)


def test_no_cluster_to_talk_to_is_a_clear_error(stack: FakeStack) -> None:
    del stack.raw["scaleplane:existingCluster"]
    with pytest.raises(WorkflowError, match="pass --context .* or --kubeconfig"):
        bluegreen.probe_for(stack, None, None)


def test_the_workflow_calls_the_automation_api_with_arguments_it_takes(stack: FakeStack, cluster: FakeCluster) -> None:
    import inspect

    calls: list[tuple[str, set[str]]] = []
    for method in ("preview", "up"):
        original = getattr(stack, method)

        def recording(method: str = method, original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls.append((method, set(kwargs)))
            return original(**kwargs)

        setattr(stack, method, recording)
    upgraded(stack, cluster)
    assert {method for method, _ in calls} == {"preview", "up"}
    for method, kwargs in calls:
        accepted = set(inspect.signature(getattr(auto.Stack, method)).parameters)
        assert kwargs <= accepted, f"auto.Stack.{method} takes no {kwargs - accepted}"
    assert ("up", {"target", "on_output"}) in calls


def test_a_kubectl_that_hangs_or_is_missing_is_a_probe_error() -> None:
    def hang(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    def missing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("kubectl")

    with pytest.raises(bluegreen.ProbeError, match="did not answer within 300 s"):
        KubectlProbe(None, None, run=hang).query("percona", "percona-blue-0", "SELECT 1")
    with pytest.raises(bluegreen.ProbeError, match="kubectl is not installed"):
        KubectlProbe(None, None, run=missing).pod_ready("percona", "percona-blue-0")
