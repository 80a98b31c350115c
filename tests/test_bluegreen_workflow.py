"""`python -m deploy bluegreen`: the workflow's steps, its refusals and its command line, against the
fake cluster of MySQL models and the component-backed FakeStack (tests/bluegreen_fakes.py)."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
from typing import Any

import pytest
from bluegreen_fakes import ComponentStack, FakeCluster, FakeProbe, rendered
from bluegreen_helpers import BLUE_IMAGE, GREEN_IMAGE, one, raw_config, run_program
from pulumi import automation as auto
from sqlfake import parse_options

from deploy import bluegreen, cli
from deploy.bluegreen import KubectlProbe, Workflow, WorkflowError

START: dict[str, Any] = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
NOW = "20261126160000"


def world(section: dict[str, Any] = START) -> tuple[FakeCluster, ComponentStack]:
    cluster = FakeCluster()
    stack = ComponentStack(section, cluster)
    cluster.write(4)
    return cluster, stack


def workflow(stack: Any, cluster: FakeCluster, lines: Any = None, when: str = NOW, **kwargs: Any) -> Workflow:
    now = datetime.datetime.strptime(when, "%Y%m%d%H%M%S")
    out = lines.append if lines is not None else (lambda _: None)
    return Workflow(stack, FakeProbe(cluster), out=out, sleep=lambda _: None, now=lambda: now, **kwargs)


def test_upgrade_freezes_snapshots_creates_verifies_switches_in_that_order() -> None:
    cluster, stack = world()
    lines: list[str] = []
    workflow(stack, cluster, lines).upgrade("green", GREEN_IMAGE)
    steps = [line for line in lines if line.startswith("[")]
    assert [s.split(":")[0] for s in steps] == [
        "[1/6] preflight",
        "[2/6] freeze",
        "[3/6] snapshot",
        "[4/6] create",
        "[5/6] verify, [6/6] switch",
    ]
    section = stack.section()
    assert section["active"] == "green"
    assert section["colours"]["green"] == {"image": GREEN_IMAGE, "restoreFrom": f"blue-{NOW}"}
    assert section["snapshots"] == {f"blue-{NOW}": {"source": "data-percona-blue"}}
    assert cluster.service == "green" and cluster.holds_every_commit()
    text = "\n".join(lines)
    assert "gtid_executed: blue" in text and "Inventory.Hardware: blue 4 rows, green 4 rows" in text


def test_running_it_again_when_done_changes_no_config() -> None:
    cluster, stack = world()
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    before = stack.section()
    lines: list[str] = []
    workflow(stack, cluster, lines).upgrade("green", GREEN_IMAGE)
    assert stack.section() == before
    assert any("already selects green" in line for line in lines)


def test_a_stale_snapshot_reused_after_an_abandoned_upgrade_is_refused_then_replaced() -> None:
    cluster, stack = world()
    cluster.snapshot_delay = 10_000
    clock = iter(range(0, 10_000, 5))
    with pytest.raises(WorkflowError, match="not readyToUse"):
        workflow(stack, cluster, clock=lambda: next(clock), snapshot_timeout=60).upgrade("green", GREEN_IMAGE)
    workflow(stack, cluster).rollback()  # abandon: the freeze is lifted, blue takes writes again
    assert cluster.write(1, update=True) == 1
    cluster.pending[f"blue-{NOW}"] = 0  # the old snapshot becomes ready, without that update in it
    with pytest.raises(WorkflowError, match="green lacks"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.section()["active"] == "blue" and cluster.service == "blue"
    # The way out the error names: retire green, upgrade again from a new snapshot.
    workflow(stack, cluster).retire("green")
    workflow(stack, cluster, when="20261126170000").upgrade("green", GREEN_IMAGE)
    assert stack.section()["colours"]["green"]["restoreFrom"] == "blue-20261126170000"
    assert cluster.service == "green" and cluster.holds_every_commit()


def test_the_switch_is_undone_when_the_preview_shows_more_than_the_service() -> None:
    cluster, stack = world()
    original = stack.set_config

    def sneak_in_a_change(key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        original(key, value, path=path)
        if key.endswith(".active") and value.value == "green":
            original("scaleplane:database.storageSize", auto.ConfigValue(value="20Gi"), path=True)

    stack.set_config = sneak_in_a_change  # type: ignore[method-assign]
    with pytest.raises(bluegreen.SwitchRefusedError, match="would not change only the percona Service"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert stack.section()["active"] == "blue" and cluster.service == "blue"


def test_an_up_that_would_delete_something_stateful_on_the_side_is_refused_and_undone() -> None:
    cluster, stack = world({**START, "snapshots": {"green-old": {"source": "data-percona-green"}}})
    original = stack.set_config

    def sneak_in_a_deletion(key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        original(key, value, path=path)
        if key.endswith(".restoreFrom"):
            stack.remove_config('scaleplane:database.snapshots["green-old"]', path=True)

    stack.set_config = sneak_in_a_deletion  # type: ignore[method-assign]
    with pytest.raises(bluegreen.DataLossRefusedError, match="would also delete") as error:
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    assert "database-snapshot-green-old" in str(error.value) and "blue stays read-only" in str(error.value)
    assert error.value.exit_code == bluegreen.EXIT_REFUSED
    assert "green" not in cluster.servers and "green" not in stack.section()["colours"]


def test_a_new_colour_needs_an_image() -> None:
    cluster, stack = world()
    with pytest.raises(WorkflowError, match="--image is required"):
        workflow(stack, cluster).upgrade("green")
    assert stack.section() == START


def test_a_green_with_its_own_data_is_not_upgraded_into() -> None:
    cluster, stack = world(
        {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}, "green": {"image": GREEN_IMAGE}}}
    )
    with pytest.raises(WorkflowError, match="Retire it first"):
        workflow(stack, cluster).upgrade("green", GREEN_IMAGE)


def test_rollback_without_a_predecessor_lifts_the_freeze_only() -> None:
    cluster, stack = world()
    workflow(stack, cluster)._freeze(workflow(stack, cluster).database(), "blue")
    workflow(stack, cluster).rollback()
    assert cluster.servers["blue"].globals["super_read_only"] == "0" and cluster.write(1) == 1


def test_retiring_the_live_colour_is_refused_before_anything_changes() -> None:
    cluster, stack = world()
    lines: list[str] = []
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--retire", "blue"])
    code = bluegreen.run(
        args, stack_factory=lambda _: stack, probe_factory=lambda *_: FakeProbe(cluster), out=lines.append
    )
    assert code == bluegreen.EXIT_USAGE
    assert "colours.blue.retired: blue is the live colour" in lines[-1]
    assert stack.section() == START and stack.calls_to("up") == []


def test_retiring_the_old_colour_keeps_its_volume_and_says_what_to_commit() -> None:
    cluster, stack = world()
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    lines: list[str] = []
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--retire", "blue"])
    code = bluegreen.run(
        args, stack_factory=lambda _: stack, probe_factory=lambda *_: FakeProbe(cluster), out=lines.append
    )
    assert code == bluegreen.EXIT_OK, lines
    assert stack.section()["colours"]["blue"]["retired"] is True
    assert "blue" not in cluster.servers and cluster.volumes["data-percona-blue"].tables
    assert "git add stacks/Pulumi.local.yaml" in lines[-1]


def test_a_retired_colour_can_be_upgraded_into_again_on_a_new_volume() -> None:
    cluster, stack = world()
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    workflow(stack, cluster).retire("blue")
    cluster.write(5)
    workflow(stack, cluster, when="20261201000000").upgrade("blue", GREEN_IMAGE)
    assert stack.section()["colours"]["blue"] == {
        "image": GREEN_IMAGE,
        "restoreFrom": "green-20261201000000",
        "retired": False,
    }
    assert cluster.service == "blue" and cluster.holds_every_commit()
    assert len(cluster.volumes["data-percona-blue"].tables["Inventory.Hardware"]) == 4, "the retained volume, untouched"


def test_the_plan_of_the_real_program_with_two_colours_runs_both_with_the_mysqld_options() -> None:
    cluster, stack = world()
    workflow(stack, cluster).upgrade("green", GREEN_IMAGE)
    result = run_program(raw_config(stack.section(), json.loads(stack.config["scaleplane:storage"].value)))
    ids = set()
    for colour in ("blue", "green"):
        options = parse_options(one(result, "ConfigMap", f"percona-{colour}-mysqld").inputs["data"]["scaleplane.cnf"])
        assert {
            k: options[k]
            for k in ("gtid_mode", "enforce_gtid_consistency", "sync_binlog", "innodb_flush_log_at_trx_commit")
        } == {
            "gtid_mode": "ON",
            "enforce_gtid_consistency": "ON",
            "sync_binlog": "1",
            "innodb_flush_log_at_trx_commit": "1",
        }
        assert options["log_bin"] == "binlog"
        ids.add(options["server_id"])
        one(result, "StatefulSet", f"percona-{colour}")
    assert len(ids) == 2
    assert rendered(stack.raw())  # the same config the fakes deployed


# -- the command line and kubectl ----------------------------------------------------------------


def test_the_command_is_registered_with_the_cli() -> None:
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "green", "--image", GREEN_IMAGE])
    assert args.handler is bluegreen.run
    assert (args.stack, args.to, args.image, args.rollback, args.abandon_writes, args.commit) == (
        "prod", "green", GREEN_IMAGE, False, False, False,
    )  # fmt: skip
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "purple"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["bluegreen", "--stack", "prod", "--to", "green", "--rollback"])


def test_cli_run_reports_a_refused_verification_with_exit_code_5() -> None:
    cluster, stack = world()
    cluster.servers["blue"].datadir.persisted["sync_binlog"] = "0"
    cluster.restart("blue")
    lines: list[str] = []
    args = cli.build_parser().parse_args(["bluegreen", "--stack", "local", "--to", "green", "--image", GREEN_IMAGE])
    code = bluegreen.run(
        args, stack_factory=lambda _: stack, probe_factory=lambda *_: FakeProbe(cluster), out=lines.append
    )
    assert code == bluegreen.EXIT_REFUSED
    assert lines[-1].startswith("bluegreen: stopped:") and "sync_binlog=0 (needs 1)" in lines[-1]


def test_the_probe_follows_the_stacks_existing_cluster() -> None:
    _, stack = world()
    probe = bluegreen.probe_for(stack, None, None)
    assert isinstance(probe, KubectlProbe) and probe.context == "kind-scaleplane"
    assert bluegreen.probe_for(stack, "other", None).context == "other"  # type: ignore[attr-defined]


def test_a_kubeconfig_output_becomes_a_private_file_removed_afterwards() -> None:
    _, stack = world()
    stack.remove_config("scaleplane:existingCluster")
    stack._outputs = {"kubeconfig": "apiVersion: v1\nkind: Config\n"}
    probe = bluegreen.probe_for(stack, None, None)
    assert probe.kubeconfig is not None and stat.S_IMODE(os.stat(probe.kubeconfig).st_mode) == 0o600
    path = probe.kubeconfig
    probe.close()
    assert not os.path.exists(path)


def test_no_cluster_to_talk_to_is_a_clear_error() -> None:
    _, stack = world()
    stack.remove_config("scaleplane:existingCluster")
    with pytest.raises(WorkflowError, match="pass --context .* or --kubeconfig"):
        bluegreen.probe_for(stack, None, None)


def test_kubectl_probe_replays_with_the_new_colours_own_mysqlbinlog_and_an_option_file() -> None:
    commands: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    KubectlProbe("ctx", run=run).replay("percona", "percona-green-0", "percona-blue-0.percona-blue", "u:1-3")
    (command,) = commands
    script = command[command.index("-c", command.index("--")) + 1]
    assert command[command.index("exec") + 1] == "percona-green-0"
    assert 'mysqlbinlog --include-gtids="$2" $(cat binlog.index)' in script and "pipefail" in script
    assert command[-4:] == [
        "/var/lib/mysql/data",
        "u:1-3",
        "/etc/scaleplane/client/client-root.cnf",
        "percona-blue-0.percona-blue",
    ]
    assert "MYSQL_PWD" not in " ".join(command)


def test_kubectl_probe_reports_a_failed_snapshot() -> None:
    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 0, "false|snapshot controller: volume not found", "")

    with pytest.raises(bluegreen.ProbeError, match="volume not found"):
        KubectlProbe(None, None, run=run).snapshot_ready("percona", "blue-1")


def test_kubectl_failures_hangs_and_absence_surface_as_probe_errors() -> None:
    def failing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "error: pods not found")

    def hang(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    def missing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("kubectl")

    with pytest.raises(bluegreen.ProbeError, match="pods not found"):
        KubectlProbe(None, None, run=failing).pod_ready("percona", "percona-blue-0")
    with pytest.raises(bluegreen.ProbeError, match="did not answer within 300 s"):
        KubectlProbe(None, None, run=hang).query("percona", "percona-blue-0", "SELECT 1")
    with pytest.raises(bluegreen.ProbeError, match="kubectl is not installed"):
        KubectlProbe(None, None, run=missing).pod_ready("percona", "percona-blue-0")


def test_rows_are_lines_of_tab_separated_values() -> None:
    assert bluegreen.parse_batch("a\tb\nc\td\n") == [["a", "b"], ["c", "d"]]
