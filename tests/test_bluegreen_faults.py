"""Crash safety of `python -m deploy bluegreen`, by fault injection.

Every external call the workflow makes (each SQL statement, kubectl call, config read and write,
preview and up) is a point where the process can die. For each command, each point is tried:
the run is killed right after that call (a BaseException, so no handler of the workflow runs, as
with a real kill), a client writes through the Service meanwhile, the servers are restarted where
that matters (SET GLOBAL forgotten, SET PERSIST kept), and the same command is run again. After
each: no committed write is lost, the Service never moved to a colour lacking a committed write
or away from one that could still take writes, and the stack config and the cluster agree.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
from collections.abc import Callable
from typing import Any, Optional

import pytest
import sqlfake
from bluegreen_fakes import ComponentStack, FakeCluster, FakeProbe
from bluegreen_helpers import BLUE_IMAGE, GREEN_IMAGE
from fakestack import FakeStack
from pulumi import automation as auto

from deploy import bluegreen
from deploy.automation import EXIT_REFUSED, guards
from deploy.automation.commands import RunOptions, run_up
from deploy.automation.output import Report
from deploy.bluegreen import RefusedError, Workflow, WorkflowError
from deploy.gtid import GtidSet

START: dict[str, Any] = {"active": "blue", "colours": {"blue": {"image": BLUE_IMAGE}}}
NOW = datetime.datetime(2026, 11, 26, 16, 0, 0)


class Crash(BaseException):
    """The process dies: nothing of the workflow's own error handling runs."""


class Faults:
    def __init__(self, crash_after: Optional[int] = None):
        self.crash_after = crash_after
        self.calls = 0

    def tick(self) -> None:
        self.calls += 1
        if self.crash_after is not None and self.calls == self.crash_after:
            raise Crash(self.calls)


class Interrupting:
    """Proxies the stack or the probe: after the N-th call of either, the process dies."""

    def __init__(self, target: Any, faults: Faults):
        self._target = target
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            self._faults.tick()
            return result

        return call


def world(section: Optional[dict[str, Any]] = None) -> tuple[FakeCluster, ComponentStack]:
    cluster = FakeCluster()
    stack = ComponentStack(section or START, cluster)
    cluster.write(4)
    cluster.write(1, update=True)  # an UPDATE: no row count shows it, its GTID does
    return cluster, stack


def workflow(stack: Any, probe: Any, lines: Optional[list[str]] = None) -> Workflow:
    # A clock that moves one second a look: a snapshot that never becomes ready fails fast.
    out = lines.append if lines is not None else (lambda _: None)
    clock = itertools.count().__next__
    return Workflow(stack, probe, out=out, sleep=lambda _: None, now=lambda: NOW, clock=clock, snapshot_timeout=50)


def upgraded() -> tuple[FakeCluster, ComponentStack]:
    cluster, stack = world()
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    cluster.write(3)
    cluster.write(2, update=True)
    return cluster, stack


def abandoned_upgrade() -> tuple[FakeCluster, ComponentStack]:
    """Upgraded, green took writes, and its binary logs are purged: they cannot be replayed."""
    cluster, stack = upgraded()
    cluster.servers["green"].datadir.flush_and_purge()
    cluster.abandon_ok = True
    return cluster, stack


def interrupted_upgrade() -> tuple[FakeCluster, ComponentStack]:
    """An upgrade killed half-way, and the servers restarted: what `resume` starts from."""
    cluster, stack = world()
    faults = Faults(UPGRADE_CALLS // 2)
    with pytest.raises(Crash):
        workflow(Interrupting(stack, faults), Interrupting(FakeProbe(cluster), faults)).upgrade("green", GREEN_IMAGE)
    cluster.restart()
    cluster.write(1)
    return cluster, stack


def check(cluster: FakeCluster, stack: ComponentStack) -> None:
    assert not cluster.violations, cluster.violations
    if cluster.abandon_ok:
        kept = [n for n in stack.section()["snapshots"] if "-kept-" in n]
        assert kept, "abandoned writes are kept in a snapshot"
        left = cluster.committed - cluster.live().gtid_executed
        assert left <= cluster.snapshots[kept[0]].gtids, "every abandoned write is in the kept snapshot"
    else:
        assert cluster.holds_every_commit(), "a committed write is not on the live colour"
    assert stack.section()["active"] == cluster.service, "the stack config and the Service disagree"
    assert all(step.op == "same" for step in stack._diff()), "the config is not what is deployed"
    assert cluster.live().globals["super_read_only"] == "0", "the live colour takes writes"
    for colour, server in cluster.servers.items():
        if colour != cluster.service:
            assert server.datadir.persisted.get("super_read_only") == "1", f"{colour} is not frozen for good"


Command = Callable[[Workflow], None]
SCENARIOS: dict[str, tuple[Callable[[], tuple[FakeCluster, ComponentStack]], Command, str]] = {
    "upgrade": (world, lambda w: w.upgrade("green", GREEN_IMAGE), "green"),
    "resume": (interrupted_upgrade, lambda w: w.upgrade("green", GREEN_IMAGE), "green"),
    "rollback-with-writes": (upgraded, lambda w: w.rollback(), "blue"),
    "rollback-abandoning-writes": (abandoned_upgrade, lambda w: w.rollback(abandon_writes=True), "blue"),
    "retire": (upgraded, lambda w: w.retire("blue"), "green"),
}


def calls_of(scenario: str) -> int:
    setup, command, _ = SCENARIOS[scenario]
    cluster, stack = setup()
    faults = Faults()
    command(workflow(Interrupting(stack, faults), Interrupting(FakeProbe(cluster), faults)))
    return faults.calls


def interrupted_then_rerun(scenario: str, point: int, restart: bool) -> None:
    setup, command, final = SCENARIOS[scenario]
    cluster, stack = setup()
    faults = Faults(point)
    with pytest.raises(Crash):
        command(workflow(Interrupting(stack, faults), Interrupting(FakeProbe(cluster), faults)))
    cluster.write(2)  # a client meanwhile, through the Service (refused while frozen: no loss)
    assert not cluster.violations, cluster.violations
    kept = set().union(*(server.gtid_executed for server in cluster.servers.values()))
    assert cluster.holds_every_commit() or (cluster.abandon_ok and cluster.committed <= kept)
    if restart:
        cluster.restart()
    command(workflow(stack, FakeProbe(cluster)))
    check(cluster, stack)
    assert cluster.service == final
    before = set(cluster.committed)
    cluster.write(1)
    assert cluster.committed - before <= cluster.live().gtid_executed, "the live colour takes writes"


UPGRADE_CALLS = 0
UPGRADE_CALLS = calls_of("upgrade")
CALLS = {name: calls_of(name) for name in SCENARIOS}


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
@pytest.mark.parametrize("part", range(4))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_interrupted_after_any_call_the_rerun_converges_and_loses_nothing(
    scenario: str, part: int, restart: bool
) -> None:
    """The interruption points, in four interleaved parts per scenario (every point is tried)."""
    for point in range(1 + part, CALLS[scenario], 4):
        interrupted_then_rerun(scenario, point, restart)


def test_every_scenario_makes_enough_calls_to_be_worth_interrupting() -> None:
    assert CALLS["upgrade"] > 40 and CALLS["rollback-with-writes"] > 30 and CALLS["resume"] > 20, CALLS
    assert all(count > 5 for count in CALLS.values()), CALLS


def test_an_upgrade_resumed_after_an_interrupted_one_also_converges_when_interrupted_again() -> None:
    cluster, stack = world()
    first = Faults(CALLS["upgrade"] // 2)
    with pytest.raises(Crash):
        workflow(Interrupting(stack, first), Interrupting(FakeProbe(cluster), first)).upgrade("green", GREEN_IMAGE)
    cluster.restart()
    second = Faults(CALLS["upgrade"] // 4)
    with pytest.raises(Crash):
        workflow(Interrupting(stack, second), Interrupting(FakeProbe(cluster), second)).upgrade("green", GREEN_IMAGE)
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    check(cluster, stack)


# -- the freeze, the verification, the switch ---------------------------------------------------


def test_the_freeze_survives_a_restart_and_the_restored_copy_inherits_it() -> None:
    cluster, stack = world()
    faults = Faults()
    wf = workflow(stack, FakeProbe(cluster))
    db = wf.database()
    wf._freeze(db, "blue")
    cluster.restart("blue")
    assert wf.frozen(db, "blue")
    assert cluster.write(1) == 0, "a restarted blue still refuses writes"
    del faults


def test_a_restart_that_lost_the_freeze_is_caught_before_the_switch() -> None:
    """SET GLOBAL (not PERSIST) on blue: the issue's path. Here blue is unfrozen by hand after the copy."""
    cluster, stack = world()
    faults = Faults()
    stack.before = None

    def unfreeze_blue(kind: str) -> None:
        if stack.section().get("active") == "green" and kind == "preview":
            cluster.servers["blue"].run("SET PERSIST super_read_only = OFF; SET PERSIST read_only = OFF")
            cluster.write(5)

    stack.before = unfreeze_blue
    with pytest.raises(WorkflowError, match="lacks|not frozen"):
        workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    stack.before = None
    assert cluster.service == "blue" and stack.section()["active"] == "blue"
    check_no_violation(cluster)
    del faults


def check_no_violation(cluster: FakeCluster) -> None:
    assert not cluster.violations and cluster.holds_every_commit()


def test_after_the_switch_the_old_colours_sessions_are_killed_and_pools_reconnect() -> None:
    cluster, stack = world()
    pooled = cluster.client
    assert pooled is not None and not pooled.killed
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    assert pooled.killed
    assert cluster.write(1) == 1 and cluster.client is not None and cluster.client.server is cluster.servers["green"]


def test_open_transactions_on_the_old_colour_fail_at_commit() -> None:
    cluster, stack = world()
    session = cluster.servers["blue"].connect("app")
    session.begin()
    session.write("Inventory.Hardware", 999, 1)
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    with pytest.raises(sqlfake.MySQLError):
        session.commit()
    check(cluster, stack)


def test_a_restored_colour_gets_its_own_server_uuid_and_server_id() -> None:
    cluster, stack = world()
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    blue, green = cluster.servers["blue"].globals, cluster.servers["green"].globals
    assert blue["server_uuid"] != green["server_uuid"] and blue["server_id"] != green["server_id"]
    cluster.restart("green")
    assert cluster.servers["green"].globals["server_uuid"] == green["server_uuid"], "a restart keeps it"


def test_the_workflow_refuses_when_the_live_colour_runs_without_gtids() -> None:
    cluster, stack = world()
    cluster.servers["blue"].datadir.persisted["gtid_mode"] = "OFF_PERMISSIVE"
    cluster.restart("blue")
    with pytest.raises(RefusedError, match="gtid_mode=OFF_PERMISSIVE"):
        workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    assert stack.section() == START and cluster.servers["blue"].globals["super_read_only"] == "0"


@pytest.mark.parametrize("failing", ["preview", "up"])
def test_a_failed_preview_or_up_puts_the_stack_config_back(failing: str) -> None:
    cluster, stack = world()
    before = stack.section()
    setattr(stack, f"fail_{failing}", "kubernetes:core/v1:PersistentVolumeClaim: quota exceeded")
    with pytest.raises(auto.CommandError):
        workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    assert stack.section() == before
    setattr(stack, f"fail_{failing}", None)
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    check(cluster, stack)


def test_a_failed_switch_preview_leaves_active_as_it_was() -> None:
    cluster, stack = world()

    def fail_switch_preview(kind: str) -> None:
        stack.fail_preview = "policy violation" if stack.section().get("active") == "green" else None

    stack.before = fail_switch_preview
    with pytest.raises(auto.CommandError):
        workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    assert stack.section()["active"] == "blue" and cluster.service == "blue"
    stack.before, stack.fail_preview = None, None
    workflow(stack, FakeProbe(cluster)).upgrade("green", GREEN_IMAGE)
    check(cluster, stack)


# -- rollback -------------------------------------------------------------------------------------


def test_rollback_replays_every_write_and_update_of_the_new_colour() -> None:
    cluster, stack = upgraded()
    green_rows = cluster.servers["green"].rows()
    lines: list[str] = []
    workflow(stack, FakeProbe(cluster), lines).rollback()
    assert cluster.service == "blue"
    assert cluster.servers["blue"].rows() == green_rows, "every INSERT and UPDATE green took is on blue"
    assert GtidSet.parse(sqlfake.render_gtids(cluster.servers["blue"].gtid_executed)) == GtidSet.parse(
        sqlfake.render_gtids(cluster.servers["green"].gtid_executed)
    )
    check(cluster, stack)


def test_rollback_refuses_when_the_binary_log_was_purged_and_names_the_gtids() -> None:
    cluster, stack = upgraded()
    cluster.servers["green"].datadir.flush_and_purge()
    with pytest.raises(RefusedError, match=r"no longer hold [0-9a-f-]+:1-5"):
        workflow(stack, FakeProbe(cluster)).rollback()
    assert cluster.service == "green" and stack.section()["active"] == "green"
    check_no_violation(cluster)


def test_rollback_with_abandon_writes_keeps_them_on_a_volume_and_a_snapshot_and_says_how() -> None:
    cluster, stack = upgraded()
    cluster.servers["green"].datadir.flush_and_purge()
    lines: list[str] = []
    workflow(stack, FakeProbe(cluster), lines).rollback(abandon_writes=True)
    assert cluster.service == "blue"
    kept = [name for name in stack.section()["snapshots"] if "-kept-" in name]
    assert kept and kept[0] in cluster.snapshots
    text = "\n".join(lines)
    assert "mysqlbinlog --include-gtids=" in text and kept[0] in text
    assert "green" in cluster.servers, "the new colour keeps running, frozen, with its volume"


def test_rollback_refuses_diverged_colours() -> None:
    cluster, stack = upgraded()
    blue = cluster.servers["blue"]
    blue.run("SET PERSIST super_read_only = OFF; SET PERSIST read_only = OFF")
    blue.connect("app").write("Inventory.Hardware", 5000, 1)
    with pytest.raises(RefusedError, match="diverged"):
        workflow(stack, FakeProbe(cluster)).rollback()
    assert cluster.service == "green"


def test_rollback_into_another_release_series_refuses_the_replay() -> None:
    cluster, stack = upgraded()
    cluster.servers["green"].version = "8.4.3-3"
    with pytest.raises(RefusedError, match="release series"):
        workflow(stack, FakeProbe(cluster)).rollback()
    assert cluster.service == "green"


# -- one source of truth ----------------------------------------------------------------------


def test_deploy_up_of_an_older_stack_file_is_refused_with_exit_5_and_says_what_to_commit() -> None:
    cluster, stack = upgraded()
    stale = FakeStack("local")
    stale.config = {k: auto.ConfigValue(value=v) for k, v in stack.raw().items()}
    stale.set_config("scaleplane:database.active", auto.ConfigValue(value="blue"), path=True)
    stale.export_stack = stack.export_stack  # type: ignore[method-assign]
    report = Report(command="up", stack="local", planned=False)
    code = run_up(stale, report, open("/dev/null", "w"), RunOptions())  # noqa: SIM115
    assert code == EXIT_REFUSED
    assert "commit stacks/Pulumi.local.yaml" in report.message and "active: green" in report.message
    assert stale.calls_to("up") == [] and stale.calls_to("preview") == []


def test_the_guard_lets_an_up_of_the_deployed_state_through() -> None:
    cluster, stack = upgraded()
    assert guards.database_state_refusal("local", stack.section(), stack.export_stack()) is None
    gone = stack.section()
    gone["colours"]["blue"]["retired"] = True
    assert "does not run blue" in (guards.database_state_refusal("local", gone, stack.export_stack()) or "")


def test_the_command_says_what_to_commit_or_commits_it() -> None:
    lines: list[str] = []
    bluegreen.tell_what_to_commit("prod", False, lines.append)
    assert "git add stacks/Pulumi.prod.yaml && git commit" in lines[0]
    calls: list[list[str]] = []

    def git(arguments: list[str]) -> Any:
        calls.append(arguments)
        return argparse.Namespace(returncode=0, stdout="", stderr="")

    bluegreen.tell_what_to_commit("prod", True, lines.append, git)
    assert calls[0] == ["add", "stacks/Pulumi.prod.yaml"] and calls[1][0] == "commit"


def test_kubectl_probe_uses_an_option_file_and_raw_output() -> None:
    seen: list[list[str]] = []

    def run(command: list[str], **_: Any) -> Any:
        seen.append(command)
        return argparse.Namespace(returncode=0, stdout="a\tb\n", stderr="")

    probe = bluegreen.KubectlProbe("ctx", run=run)
    assert probe.query("percona", "percona-blue-0", "SELECT 1") == [["a", "b"]]
    command = seen[0]
    assert "--raw" in command and "MYSQL_PWD" not in " ".join(command)
    assert command[command.index("--") + 2] == "--defaults-extra-file=/etc/scaleplane/client/client-root.cnf"
