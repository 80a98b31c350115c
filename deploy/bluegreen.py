"""`python -m deploy bluegreen`: a zero-data-loss blue/green upgrade of the Percona database.

    python -m deploy bluegreen --stack prod --to green --image docker.io/percona/percona-server:8.0.46-37.1
    python -m deploy bluegreen --stack prod --rollback
    python -m deploy bluegreen --stack prod --retire blue

The whole state of an upgrade lives in the stack's `scaleplane:database` config, so each step
is an edit of that section (validated with the program's own settings before it is written)
followed by `pulumi up` through the Automation API:

1. preflight  the live colour's pod is ready;
2. freeze     writes to the live colour stop (SET GLOBAL super_read_only = ON): every row it
              holds is then in the snapshot, and nothing written after it is left behind;
3. snapshot   a VolumeSnapshot of the live colour's PVC; wait until it is readyToUse;
4. create     the target colour, its PVC restored from the snapshot;
5. verify     its pod is ready, it answers a query, every table has as many rows as in the
              live colour, and the live colour's binary log ends exactly where the target's copy
              of it does: nothing (not even an UPDATE, which no row count shows) was written to
              the live colour after the snapshot;
6. switch     `active` becomes the target; a preview must show that only the `percona`
              Service changes, or the switch is undone before anything is deployed; the
              `pulumi up` that follows targets that Service alone.

Every other `pulumi up` of the workflow is previewed first, and refused (nothing deployed) if it
would delete or replace a stateful resource it is not meant to, as `python -m deploy up` refuses
without --allow-data-loss.

The old colour stays, read-only, for `--rollback`. Every step checks what is already done, so
running the same command again resumes where it stopped; if a step fails after the freeze, the
live colour stays read-only (nothing written goes missing) until the command is run again or
`--rollback` lifts the freeze. Cluster queries go through a `ClusterProbe` (kubectl here; tests
use a fake), Pulumi through deploy.automation's `StackLike` (`open_stack`: the policy pack is
attached to every preview and up; tests use a fake).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Optional, Protocol

from pulumi import automation as auto

import settings as settings_module
from deploy.automation import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    DriverError,
    EventTally,
    StackLike,
    error_line,
    open_stack,
)
from deploy.project import STACKS
from settings import SettingsError
from settings.database import COLOURS, DatabaseSettings

SECTION = "scaleplane:database"
SERVICE_TYPE = "kubernetes:core/v1:Service"
COMPONENT_TYPE = "scaleplane:database:BlueGreenDatabase"

#: Validated with the database section (the database needs it).
STORAGE = "scaleplane:storage"
#: Where the workflow finds the cluster's kubeconfig context, for stacks on an existing cluster.
EXISTING_CLUSTER = "scaleplane:existingCluster"


class ClusterProbe(Protocol):
    """Read-only looks at the cluster, and SQL run inside a database pod as root."""

    def snapshot_ready(self, namespace: str, name: str) -> bool: ...

    def pod_ready(self, namespace: str, pod: str) -> bool: ...

    def query(self, namespace: str, pod: str, sql: str) -> list[list[str]]: ...


class WorkflowError(RuntimeError):
    """A step could not be completed; the message says what to do next."""

    exit_code = EXIT_FAILED


class SwitchRefusedError(WorkflowError):
    """The switch would have changed more than the Service's selector; nothing was deployed."""

    exit_code = EXIT_REFUSED


class DataLossRefusedError(WorkflowError):
    """An `up` would have deleted or replaced a stateful resource it was not meant to; nothing was deployed."""

    exit_code = EXIT_REFUSED


class ProbeError(RuntimeError):
    """The cluster could not be asked (kubectl failed)."""


def _config_value(value: str) -> auto.ConfigValue:
    return auto.ConfigValue(value=value, secret=False)


def get_section(stack: StackLike, key: str) -> Optional[Any]:
    """A structured config key's value (parsed), or None when the stack does not set it."""
    try:
        value = stack.get_config(key)
    except (auto.CommandError, KeyError):
        return None
    return json.loads(value.value) if isinstance(value.value, str) else value.value


def config_path(*parts: str) -> str:
    """`scaleplane:database.a.b`, with names that are not identifiers (snapshot names) in brackets.

    Pulumi's strict property-path syntax takes `.name` only for [A-Za-z_$][A-Za-z0-9_$]*.
    """
    key = SECTION
    for part in parts:
        key += f".{part}" if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", part) else f'["{part}"]'
    return key


def _as_path_value(value: Any) -> str:
    """`pulumi config set --path` stores "true"/"false" as booleans and everything else as given."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


USER_TABLES = (
    "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema') "
    "ORDER BY table_schema, table_name"
)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


@dataclass
class Workflow:
    """The upgrade, rollback and retire steps against one stack and its cluster."""

    stack: StackLike
    probe: ClusterProbe
    out: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    snapshot_timeout: float = 900.0
    poll_seconds: float = 5.0

    # -- reading and changing the stack's database section ------------------------------------

    def _validate(self, section: dict[str, Any], storage: Optional[Any]) -> DatabaseSettings:
        """The program's own settings validation of a database section (and the storage it needs)."""
        raw = {"scaleplane:environment": "bluegreen", EXISTING_CLUSTER: json.dumps({"context": "validation"})}
        if storage is not None:
            raw[STORAGE] = json.dumps(storage)
        raw[SECTION] = json.dumps(section)
        validated = settings_module.from_config(raw).database
        assert validated is not None  # the section was given
        return validated

    def database(self) -> DatabaseSettings:
        """The stack's current, validated database settings."""
        section = get_section(self.stack, SECTION)
        if section is None:
            raise WorkflowError(f"stack {self.stack.name} has no {SECTION} section: it runs no database")
        return self._validate(section, get_section(self.stack, STORAGE))

    def _change(self, changes: Sequence[tuple[tuple[str, ...], Any]], what: str) -> bool:
        """Write `changes` (path, value) in order, one `config set --path` each. True: something written.

        Every intermediate section, not only the last, is validated before the first write, so an
        interruption between two writes leaves a valid stack config behind (a `pulumi up` of it is
        safe). Values already in place are skipped.
        """
        section = get_section(self.stack, SECTION)
        assert section is not None
        storage = get_section(self.stack, STORAGE)
        current = copy.deepcopy(section)
        writes: list[tuple[str, str]] = []
        for path, value in changes:
            node: Any = current
            for part in path[:-1]:
                node = node.setdefault(part, {})
            if node.get(path[-1]) == value:
                continue
            node[path[-1]] = value
            # The program's own validation: refused, naming the key, before anything changes.
            self._validate(current, storage)
            writes.append((config_path(*path), _as_path_value(value)))
        if not writes:
            self.out(f"  {what}: already in the stack config")
            return False
        for key, value in writes:
            self.out(f"  config set --path {key} {value}")
            self.stack.set_config(key, _config_value(value), path=True)
        return True

    def _up(self, what: str, retiring: Optional[str] = None) -> None:
        """`pulumi up`, once a preview shows it deletes or replaces no stateful resource.

        The same guard as `python -m deploy up` (deploy.automation's data-loss risks): a pending
        edit elsewhere in the stack must not ride along on an upgrade step. Retiring a colour
        deletes that colour's StatefulSet and (retained) PVC, and nothing else stateful.
        """
        guard = EventTally()
        self.out(f"  pulumi preview ({what}: no stateful resource may be deleted or replaced) ...")
        try:
            self.stack.preview(on_event=guard)
        except auto.CommandError:
            # The engine fails a preview that would delete or replace a protected resource: running
            # the command again cannot help, so it is a refusal naming them, like any other risk.
            if not guard.protect_refusals:
                raise
        expected = (f"-{retiring}", f"-{retiring}-data") if retiring else ()
        risks = [
            risk
            for risk in guard.data_loss_risks
            if risk.urn in guard.protect_refusals
            or not (expected and risk.kind == "delete" and COMPONENT_TYPE in risk.urn and risk.name.endswith(expected))
        ]
        if risks:
            raise DataLossRefusedError(
                f"the up for {what} would also {'; '.join(risk.describe() for risk in risks)}; nothing was deployed. "
                f"Run `pulumi preview` to see which pending edit does that"
            )
        self.out(f"  pulumi up ({what}) ...")
        self.stack.up(on_output=lambda line: self.out("    " + line.rstrip("\n")))

    # -- cluster looks ----------------------------------------------------------------------------

    @staticmethod
    def pod(db: DatabaseSettings, colour: str) -> str:
        return f"{db.name}-{colour}-0"

    def _require_ready(self, db: DatabaseSettings, colour: str) -> None:
        if not self.probe.pod_ready(db.namespace, self.pod(db, colour)):
            raise WorkflowError(f"{colour}'s pod {db.namespace}/{self.pod(db, colour)} is not ready")

    def _set_read_only(self, db: DatabaseSettings, colour: str, read_only: bool) -> None:
        if read_only:
            # Enabling read_only waits for running transactions to commit: give up after a minute
            # rather than hang behind a long transaction.
            sql = "SET SESSION lock_wait_timeout = 60; SET GLOBAL super_read_only = ON"
        else:
            sql = "SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF"
        self.probe.query(db.namespace, self.pod(db, colour), sql)

    def row_counts(self, db: DatabaseSettings, colour: str) -> dict[str, int]:
        """Exact row counts of every user table (COUNT(*), not information_schema's estimate)."""
        pod = self.pod(db, colour)
        tables = [(row[0], row[1]) for row in self.probe.query(db.namespace, pod, USER_TABLES)]
        if not tables:
            return {}
        # Rows are matched back by position, so no table name is ever put inside a string literal.
        sql = " UNION ALL ".join(
            f"SELECT {index}, COUNT(*) FROM {_quote(schema)}.{_quote(table)}"
            for index, (schema, table) in enumerate(tables)
        )
        counts = {int(row[0]): int(row[1]) for row in self.probe.query(db.namespace, pod, sql)}
        return {f"{schema}.{table}": counts[index] for index, (schema, table) in enumerate(tables)}

    def binary_logs(self, db: DatabaseSettings, colour: str) -> Optional[dict[str, int]]:
        """Size in bytes of each of the colour's binary log files; None when binary logging is off."""
        pod = self.pod(db, colour)
        if self.probe.query(db.namespace, pod, "SELECT @@global.log_bin") != [["1"]]:
            return None
        return {row[0]: int(row[1]) for row in self.probe.query(db.namespace, pod, "SHOW BINARY LOGS")}

    def _check_no_write_after_snapshot(self, db: DatabaseSettings, live: str, target: str) -> None:
        """The live colour's newest binary log is as long as the target's copy of it.

        Every committed write goes to the binary log (sync_binlog=1), so a live colour that took
        a write after the snapshot (a lapsed freeze: a restarted pod, a reused older snapshot)
        has a longer file, or a newer one, than the copy the target was restored with.
        """
        live_logs = self.binary_logs(db, live)
        if not live_logs:
            self.out(
                f"  warning: {live} runs without a binary log: only row counts show that {target} holds "
                f"every write (an UPDATE after the snapshot would not show)"
            )
            return
        newest = list(live_logs)[-1]  # SHOW BINARY LOGS lists them oldest first
        copy_size = (self.binary_logs(db, target) or {}).get(newest)
        shown = "-" if copy_size is None else copy_size
        self.out(f"  binary log {newest}: {live} {live_logs[newest]} bytes, {target}'s copy {shown} bytes")
        if copy_size != live_logs[newest]:
            raise WorkflowError(
                f"{live} took writes after the snapshot {target} was restored from (binary log {newest}: "
                f"{live} {live_logs[newest]} bytes, {target}'s copy {shown}); the Service still selects {live}. "
                f"Retire {target} (--retire {target}) and upgrade again: a new snapshot is taken"
            )

    def _wait_for_snapshot(self, db: DatabaseSettings, snapshot: str) -> None:
        deadline = self.clock() + self.snapshot_timeout
        while not self.probe.snapshot_ready(db.namespace, snapshot):
            if self.clock() >= deadline:
                raise WorkflowError(
                    f"VolumeSnapshot {db.namespace}/{snapshot} is not readyToUse after "
                    f"{self.snapshot_timeout:.0f} s; run the same command again to keep waiting"
                )
            self.out(f"  waiting for VolumeSnapshot {snapshot} to be readyToUse ...")
            self.sleep(self.poll_seconds)
        self.out(f"  VolumeSnapshot {snapshot} is readyToUse")

    # -- the switch: only the Service may change ----------------------------------------------

    def _planned_changes(self) -> list[tuple[str, str, str]]:
        """(op, type, urn) of every resource a preview would touch."""
        changes: list[tuple[str, str, str]] = []

        def collect(event: Any) -> None:
            meta = getattr(getattr(event, "resource_pre_event", None), "metadata", None)
            if meta is None:
                return
            op = str(getattr(meta.op, "value", meta.op))
            if op not in ("same", "read"):
                changes.append((op, meta.type, meta.urn))

        self.out("  pulumi preview (a switch may change nothing but the percona Service's selector) ...")
        self.stack.preview(on_event=collect)
        return changes

    @staticmethod
    def _only_service(changes: list[tuple[str, str, str]]) -> bool:
        """Every change is an update of the BlueGreenDatabase's `percona` Service."""
        return all(
            op == "update"
            and type_ == SERVICE_TYPE
            and f"{COMPONENT_TYPE}${SERVICE_TYPE}::" in urn
            and urn.endswith("-service")
            for op, type_, urn in changes
        )

    def _propose_switch(self, db: DatabaseSettings, to: str) -> Optional[str]:
        """Set `active` to `to` in the stack config, if a preview then shows only the Service's update.

        Returns the Service's URN, or None when nothing is left to deploy (a switch interrupted
        after its up). Anything else in the preview sets `active` back and raises
        SwitchRefusedError: nothing is deployed.
        """
        previous = db.active
        if to != previous:
            self._change([(("active",), to)], f"active = {to}")
        changes = self._planned_changes()
        if len(changes) == 1 and self._only_service(changes):
            return changes[0][2]
        if to == previous and not changes:
            return None
        described = "; ".join(f"{op} {urn}" for op, _, urn in changes) or "no change at all"
        if to == previous:
            raise SwitchRefusedError(
                f"the stack config already selects {to}, but a preview would change more than the percona "
                f"Service ({described}). Run `pulumi preview` to see why"
            )
        self._change([(("active",), previous)], f"active back to {previous}")
        raise SwitchRefusedError(
            f"switching to {to} would not change only the percona Service ({described}); "
            f"active is back to {previous} and nothing was deployed. Run `pulumi preview` to see why"
        )

    def _deploy_switch(self, to: str, service_urn: Optional[str]) -> None:
        """`pulumi up` targeted at the Service alone: whatever else might change meanwhile is left alone."""
        if service_urn is None:
            self.out(f"  the percona Service already selects {to}")
            return
        self.out(f"  pulumi up --target {service_urn} ...")
        self.stack.up(target=[service_urn], on_output=lambda line: self.out("    " + line.rstrip("\n")))

    # -- the commands -----------------------------------------------------------------------------

    def upgrade(self, target: str, image: Optional[str] = None) -> None:
        db = self.database()
        live = db.active
        self.out(f"[1/6] preflight: {db.name} serves from {live} ({db.colours[live].image}); target {target}")
        if target == live:
            self.out(f"  {target} is already live in the stack config; making sure the cluster agrees")
            self._deploy_switch(target, self._propose_switch(db, target))
            return
        self._require_ready(db, live)
        live_claim = db.claim(live)
        existing = db.colours.get(target)
        if existing is not None and not existing.retired:
            source = db.snapshots[existing.restore_from].source if existing.restore_from else None
            if source != live_claim:
                raise WorkflowError(
                    f"{target} already runs with its own data (it is not a copy of {live}'s PVC {live_claim}). "
                    f"Retire it first (--retire {target}) to upgrade into it again"
                )
            assert existing.restore_from is not None
            snapshot = existing.restore_from
            image = image or existing.image
            self.out(f"  resuming: {target} is restored from snapshot {snapshot} of {live}")
        else:
            if image is None:
                if existing is None:
                    raise WorkflowError(f"--image is required: {target} is not defined yet")
                image = existing.image
            referenced = {c.restore_from for c in db.colours.values() if c.restore_from}
            pending = sorted(s for s, spec in db.snapshots.items() if spec.source == live_claim and s not in referenced)
            snapshot = pending[-1] if pending else f"{live}-{self.now():%Y%m%d%H%M%S}"

        try:
            self._upgrade_into(db, target, image, snapshot)
        except WorkflowError as error:
            raise type(error)(
                f"{error}. {live} stays read-only (no write goes missing): run the same command to resume, "
                f"or --rollback to lift the freeze and abandon the upgrade"
            ) from error

    def _upgrade_into(self, db: DatabaseSettings, target: str, image: str, snapshot: str) -> None:
        live = db.active
        live_claim = db.claim(live)
        existing = db.colours.get(target)  # type: ignore[call-overload]
        self.out(f"[2/6] freeze: writes to {live} stop (super_read_only) so the snapshot holds every row")
        self._set_read_only(db, live, True)

        self.out(f"[3/6] snapshot: VolumeSnapshot {snapshot} of {live}'s PVC {live_claim}")
        if snapshot not in db.snapshots:
            self._change([(("snapshots", snapshot, "source"), live_claim)], f"snapshot {snapshot}")
        self._up(f"snapshot {snapshot}")
        self._wait_for_snapshot(db, snapshot)

        self.out(f"[4/6] create: {target} on {image}, its PVC restored from {snapshot}")
        # restoreFrom first, `retired: false` last: each intermediate config restores from the snapshot.
        changes: list[tuple[tuple[str, ...], Any]] = [
            (("colours", target, "restoreFrom"), snapshot),
            (("colours", target, "image"), image),
        ]
        if existing is not None and existing.retired:
            changes.append((("colours", target, "retired"), False))
        self._change(changes, f"colour {target}")
        self._up(f"create {target}")

        db = self.database()
        self.out(f"[5/6] verify: {target} is ready, answers queries and holds every row of {live}")
        self._verify(db, live, target)

        self.out(f"[6/6] switch: the percona Service selects {target}")
        service_urn = self._propose_switch(db, target)
        self._set_read_only(db, target, False)  # a restored copy is writable, unless a rollback froze it
        self._deploy_switch(target, service_urn)
        self._require_ready(db, target)
        self.out(
            f"done: {target} is live. {live} stays read-only for rollback "
            f"(python -m deploy bluegreen --stack {self.stack.name} --rollback); "
            f"retire it when sure (--retire {live})."
        )

    def _verify(self, db: DatabaseSettings, live: str, target: str) -> None:
        self._require_ready(db, target)
        pod = self.pod(db, target)
        if self.probe.query(db.namespace, pod, "SELECT 1") != [["1"]]:
            raise WorkflowError(f"{target} does not answer SELECT 1")
        for colour in (live, target):
            version = self.probe.query(db.namespace, self.pod(db, colour), "SELECT VERSION()")
            self.out(f"  {colour}: Percona Server {version[0][0] if version else '?'}")
        before, after = self.row_counts(db, live), self.row_counts(db, target)
        for table in sorted(set(before) | set(after)):
            self.out(f"  {table}: {live} {before.get(table, '-')} rows, {target} {after.get(table, '-')} rows")
        if before != after:
            differing = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
            raise WorkflowError(
                f"{target} does not hold the same rows as {live} ({', '.join(differing)}); the Service still "
                f"selects {live}. If {live} took writes after the snapshot, retire {target} "
                f"(--retire {target}) and upgrade again"
            )
        self._check_no_write_after_snapshot(db, live, target)

    def predecessor(self, db: DatabaseSettings) -> Optional[str]:
        """The colour the live colour was restored from, if it still runs."""
        spec = db.colours[db.active]
        if not spec.restore_from:
            return None
        source = db.snapshots[spec.restore_from].source
        return next((c for c in db.serving if c != db.active and db.claim(c) == source), None)

    def successors(self, db: DatabaseSettings) -> list[str]:
        """Running colours restored from a snapshot of the live colour's PVC."""
        live_claim = db.claim(db.active)
        return [
            colour
            for colour, spec in db.serving.items()
            if colour != db.active and spec.restore_from and db.snapshots[spec.restore_from].source == live_claim
        ]

    def rollback(self) -> None:
        db = self.database()
        live = db.active
        previous = self.predecessor(db)
        if previous is None:
            self.out(f"{live} is live and no running colour was upgraded into it: nothing to switch back to")
            self._require_ready(db, live)
            # A rollback interrupted before its freeze: the colour it switches away from may still
            # be selected, and open connections outlive the switch. Freeze it, as step 3 would.
            for colour in self.successors(db):
                if self.probe.pod_ready(db.namespace, self.pod(db, colour)):
                    self.out(f"  freezing {colour}, upgraded from {live}: it must take no write once {live} is live")
                    self._set_read_only(db, colour, True)
            self.out(f"  lifting any write freeze on {live} (an interrupted upgrade leaves it read-only)")
            self._set_read_only(db, live, False)
            # A rollback interrupted after its config switch: deploy it.
            self._deploy_switch(live, self._propose_switch(db, live))
            return
        self.out(f"[1/4] preflight: {live} is live; rolling back to {previous}")
        self._require_ready(db, previous)
        self._require_ready(db, live)
        newer, older = self.row_counts(db, live), self.row_counts(db, previous)
        for table in sorted(set(newer) | set(older)):
            if newer.get(table) != older.get(table):
                self.out(
                    f"  warning: {table}: {live} {newer.get(table, '-')} rows, {previous} {older.get(table, '-')} "
                    f"rows; what {live} took since the switch stays on {live}'s volume only"
                )
        self.out(f"[2/4] switch in the stack config: active = {previous}, if only the Service changes")
        service_urn = self._propose_switch(db, previous)
        self.out(f"[3/4] freeze {live} (open connections included), unfreeze {previous}")
        self._set_read_only(db, live, True)
        self._set_read_only(db, previous, False)
        self.out(f"[4/4] deploy: the percona Service selects {previous}")
        self._deploy_switch(previous, service_urn)
        self.out(f"done: {previous} is live again; {live} stays, read-only, until you retire it (--retire {live})")

    def retire(self, colour: str) -> None:
        db = self.database()
        spec = db.colours.get(colour)  # type: ignore[call-overload]
        if spec is None or spec.retired:
            self.out(f"{colour} is not running: nothing to retire")
            return
        claim = db.claim(colour)  # type: ignore[arg-type]
        self.out(f"[1/1] retire {colour}: its StatefulSet goes; its PVC {claim} is retained")
        # Refused by the settings (naming colours.<colour>.retired) when it is the live colour.
        self._change([(("colours", colour, "retired"), True)], f"retire {colour}")
        self._up(f"retire {colour}", retiring=colour)
        self.out(
            f"done: {colour} no longer runs. Its volume is kept: delete it on purpose with "
            f"`kubectl -n {db.namespace} delete pvc {claim}` once you are sure"
        )


# -- kubectl -------------------------------------------------------------------------------------


class KubectlProbe:
    """The cluster probe through kubectl (the kubernetes Python client is not a dependency)."""

    def __init__(
        self,
        context: Optional[str] = None,
        kubeconfig: Optional[str] = None,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ):
        self.context = context
        self.kubeconfig = kubeconfig
        self._run = run
        self._owned_file: Optional[str] = None

    @classmethod
    def with_kubeconfig_text(cls, text: str) -> KubectlProbe:
        """A probe on a kubeconfig held in memory (a stack output): a private file, removed by close()."""
        handle, path = tempfile.mkstemp(prefix="scaleplane-kubeconfig-")  # mode 0600
        with os.fdopen(handle, "w") as file:
            file.write(text)
        probe = cls(None, path)
        probe._owned_file = path
        return probe

    def close(self) -> None:
        if self._owned_file and os.path.exists(self._owned_file):
            os.remove(self._owned_file)
        self._owned_file = None

    def _kubectl(self, *args: str) -> str:
        command = ["kubectl"]
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context:
            command += ["--context", self.context]
        command += list(args)
        try:
            result = self._run(command, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired as error:
            raise ProbeError(f"kubectl {' '.join(args[:4])} did not answer within {error.timeout:.0f} s") from error
        except FileNotFoundError as error:
            raise ProbeError("kubectl is not installed (or not on PATH)") from error
        if result.returncode != 0:
            raise ProbeError(f"kubectl {' '.join(args[:4])} failed: {result.stderr.strip()}")
        return result.stdout

    def snapshot_ready(self, namespace: str, name: str) -> bool:
        out = self._kubectl(
            "-n",
            namespace,
            "get",
            "volumesnapshots.snapshot.storage.k8s.io",
            name,
            "--ignore-not-found",
            "-o",
            'jsonpath={.status.readyToUse}{"|"}{.status.error.message}',
        )
        ready, _, error = out.partition("|")
        if error.strip():
            raise ProbeError(f"VolumeSnapshot {namespace}/{name} failed: {error.strip()}")
        return ready.strip() == "true"

    def pod_ready(self, namespace: str, pod: str) -> bool:
        out = self._kubectl(
            "-n",
            namespace,
            "get",
            "pod",
            pod,
            "--ignore-not-found",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        )
        return out.strip() == "True"

    def query(self, namespace: str, pod: str, sql: str) -> list[list[str]]:
        # The password never leaves the pod: the shell in the container reads it from its env.
        shell = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql --user=root --batch --skip-column-names --execute="$1"'
        out = self._kubectl("-n", namespace, "exec", pod, "-c", "mysql", "--", "sh", "-c", shell, "sh", sql)
        return [line.split("\t") for line in out.splitlines() if line]


# -- command line --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bluegreen",
        help="blue/green upgrade of the Percona database: snapshot, create, verify, switch; or roll back",
    )
    parser.add_argument("--stack", "-s", required=True, help=f"stack name ({', '.join(STACKS)})")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--to", choices=COLOURS, help="upgrade into this colour and switch to it")
    action.add_argument("--rollback", action="store_true", help="switch back to the colour upgraded from")
    action.add_argument("--retire", choices=COLOURS, help="remove a colour that is not live (its PVC is kept)")
    parser.add_argument("--image", help="Percona Server image of the new colour (pinned tag or digest)")
    parser.add_argument("--context", help="kubeconfig context (default: the stack's existingCluster.context)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the stack's, or KUBECONFIG)")
    parser.add_argument("--snapshot-timeout", type=float, default=900.0, help="seconds to wait for a snapshot")
    parser.set_defaults(handler=run)


def open_bluegreen_stack(name: str) -> StackLike:
    """The stack through the project's Automation API driver, policy pack attached to preview and up."""
    return open_stack(name, policy=True)


def probe_for(stack: StackLike, context: Optional[str], kubeconfig: Optional[str]) -> KubectlProbe:
    """kubectl pointed at the stack's cluster: flags first, then the stack's existingCluster, then its outputs."""
    if context or kubeconfig:
        return KubectlProbe(context, kubeconfig)
    existing = get_section(stack, EXISTING_CLUSTER)
    if existing is not None:
        return KubectlProbe(existing.get("context"), existing.get("kubeconfig"))
    outputs = stack.outputs()
    if "kubeconfig" in outputs:
        value = outputs["kubeconfig"].value
        return KubectlProbe.with_kubeconfig_text(value if isinstance(value, str) else json.dumps(value))
    raise WorkflowError(
        f"cannot tell which cluster stack {stack.name} runs on: pass --context (e.g. after "
        "`aws eks update-kubeconfig`) or --kubeconfig, or export the cluster's kubeconfig as the stack output "
        "`kubeconfig`"
    )


def run(
    args: argparse.Namespace,
    *,
    stack_factory: Callable[[str], StackLike] = open_bluegreen_stack,
    probe_factory: Callable[[StackLike, Optional[str], Optional[str]], ClusterProbe] = probe_for,
    out: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    probe: Optional[ClusterProbe] = None
    try:
        stack = stack_factory(args.stack)
        probe = probe_factory(stack, args.context, args.kubeconfig)
        workflow = Workflow(stack, probe, out=out, sleep=sleep, snapshot_timeout=args.snapshot_timeout)
        if args.to:
            workflow.upgrade(args.to, args.image)
        elif args.rollback:
            workflow.rollback()
        else:
            workflow.retire(args.retire)
    except SettingsError as error:
        out(f"bluegreen: refused, nothing changed: {error}")
        return EXIT_USAGE
    except WorkflowError as error:
        out(f"bluegreen: stopped: {error}")
        return error.exit_code
    except ProbeError as error:
        out(f"bluegreen: stopped: {error}")
        return EXIT_FAILED
    except DriverError as error:
        out(f"bluegreen: {error}")
        return error.exit_code
    except auto.CommandError as error:
        out(f"bluegreen: stopped: pulumi failed: {error_line(error)}; run the same command again to resume")
        return EXIT_FAILED
    finally:
        close = getattr(probe, "close", None)
        if close is not None:
            close()
    return EXIT_OK
