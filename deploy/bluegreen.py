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
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Optional, Protocol

from pulumi import automation as auto

import settings as settings_module
from components.bluegreen import CLIENT_DIR, DATADIR, ROOT_CLIENT_KEY
from deploy.automation import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    DriverError,
    EventTally,
    StackLike,
    error_line,
    guards,
    open_stack,
)
from deploy.gtid import GtidSet
from deploy.project import PROJECT_DIR, STACKS
from settings import SettingsError
from settings.database import COLOURS, SERVER_IDS, DatabaseSettings

SECTION = "scaleplane:database"
SERVICE_TYPE = "kubernetes:core/v1:Service"
COMPONENT_TYPE = "scaleplane:database:BlueGreenDatabase"

#: Validated with the database section (the database needs it).
STORAGE = "scaleplane:storage"
#: Where the workflow finds the cluster's kubeconfig context, for stacks on an existing cluster.
EXISTING_CLUSTER = "scaleplane:existingCluster"


class ClusterProbe(Protocol):
    """Read-only looks at the cluster, SQL run inside a database pod as root, and binary log replay."""

    def snapshot_ready(self, namespace: str, name: str) -> bool: ...

    def pod_ready(self, namespace: str, pod: str) -> bool: ...

    def query(self, namespace: str, pod: str, sql: str) -> list[list[str]]: ...

    def replay(self, namespace: str, source_pod: str, target_host: str, gtids: str) -> None:
        """`mysqlbinlog --include-gtids=<gtids>` of the source pod's binary logs, into mysqld at target_host."""
        ...


class WorkflowError(RuntimeError):
    """A step could not be completed; the message says what to do next."""

    exit_code = EXIT_FAILED


class SwitchRefusedError(WorkflowError):
    """The switch would have changed more than the Service's selector; nothing was deployed."""

    exit_code = EXIT_REFUSED


class DataLossRefusedError(WorkflowError):
    """An `up` would have deleted or replaced a stateful resource it was not meant to; nothing was deployed."""

    exit_code = EXIT_REFUSED


class RefusedError(WorkflowError):
    """The workflow refuses to go on: what it relies on is not so (mysqld options, diverged data, stale config)."""

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


#: Schema and table names hex-encoded: no name (a tab, a newline, a backtick in it) can break the
#: tab-separated output apart.
USER_TABLES = (
    "SELECT HEX(table_schema), HEX(table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema') "
    "ORDER BY table_schema, table_name"
)
#: What every colour must run with (settings.database.MYSQLD_OPTIONS, server_id per colour).
MYSQLD_CHECK = (
    "SELECT @@global.gtid_mode, @@global.enforce_gtid_consistency, @@global.log_bin, @@global.sync_binlog, "
    "@@global.innodb_flush_log_at_trx_commit, @@global.server_id, @@global.server_uuid"
)
#: MySQL prints ",\n" between the sources of a GTID set: one line of output instead.
GTID_EXECUTED = "SELECT REPLACE(@@global.gtid_executed, '\\n', '')"
GTID_PURGED = "SELECT REPLACE(@@global.gtid_purged, '\\n', '')"
#: SET PERSIST: the freeze is written to mysqld-auto.cnf in the datadir, so it survives a restart
#: (SET GLOBAL does not) and travels with a snapshot: a restored colour starts frozen.
FREEZE = "SET SESSION lock_wait_timeout = 60; SET PERSIST super_read_only = ON"
UNFREEZE = "SET PERSIST super_read_only = OFF; SET PERSIST read_only = OFF"
#: Root (SUPER) may write, applications may not: a rollback's replay into the old colour.
REPLAY_ONLY = "SET PERSIST read_only = ON; SET PERSIST super_read_only = OFF"
FROZEN = "SELECT @@global.super_read_only"
PERSISTED = (
    "SELECT variable_name, variable_value FROM performance_schema.persisted_variables "
    "WHERE variable_name IN ('read_only', 'super_read_only') ORDER BY variable_name"
)
PROCESSLIST = (
    "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
    "AND user NOT IN ('system user', 'event_scheduler') ORDER BY id"
)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _series(version: str) -> str:
    """8.0.46-37.1 -> 8.0"""
    return ".".join(version.split(".")[:2])


def stack_file(stack: str) -> str:
    return f"stacks/Pulumi.{stack}.yaml"


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
    #: Whether this run wrote the stack config (the user must commit the stack file).
    changed_config: bool = False

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

    def _change(self, changes: Sequence[tuple[tuple[str, ...], Any]], what: str) -> list[tuple[tuple[str, ...], Any]]:
        """Write `changes` (path, value) in order, one `config set --path` each; returns how to undo them.

        Every intermediate section, not only the last, is validated before the first write, so an
        interruption between two writes leaves a valid stack config behind (a `pulumi up` of it is
        safe). Values already in place are skipped. The undo list holds (path, previous value or
        _ABSENT), newest first.
        """
        section = get_section(self.stack, SECTION)
        assert section is not None
        storage = get_section(self.stack, STORAGE)
        current = copy.deepcopy(section)
        writes: list[tuple[tuple[str, ...], Any]] = []
        undo: list[tuple[tuple[str, ...], Any]] = []
        for path, value in changes:
            node: Any = current
            created: Optional[tuple[str, ...]] = None  # the outermost key this write creates
            for index, part in enumerate(path[:-1]):
                if part not in node and created is None:
                    created = path[: index + 1]
                node = node.setdefault(part, {})
            if node.get(path[-1]) == value:
                continue
            if created is None and path[-1] not in node:
                created = path
            undo.insert(0, (created, _ABSENT) if created else (path, copy.deepcopy(node[path[-1]])))
            node[path[-1]] = value
            # The program's own validation: refused, naming the key, before anything changes.
            self._validate(current, storage)
            writes.append((path, value))
        if not writes:
            self.out(f"  {what}: already in the stack config")
            return []
        for path, value in writes:
            key = config_path(*path)
            self.out(f"  config set --path {key} {_as_path_value(value)}")
            self.stack.set_config(key, _config_value(_as_path_value(value)), path=True)
            self.changed_config = True
        return undo

    def _undo(self, undo: list[tuple[tuple[str, ...], Any]], why: str) -> None:
        """Put the stack config back as it was before `_change` (newest write first)."""
        if not undo:
            return
        self.out(f"  {why}: the stack config is put back")
        for path, previous in undo:
            key = config_path(*path)
            if previous is _ABSENT:
                self.out(f"  config rm --path {key}")
                self.stack.remove_config(key, path=True)
            elif isinstance(previous, dict):
                for leaf_path, leaf in _leaves(path, previous):
                    self.stack.set_config(config_path(*leaf_path), _config_value(_as_path_value(leaf)), path=True)
            else:
                self.out(f"  config set --path {key} {_as_path_value(previous)}")
                self.stack.set_config(key, _config_value(_as_path_value(previous)), path=True)

    def _apply(self, changes: Sequence[tuple[tuple[str, ...], Any]], what: str, retiring: Optional[str] = None) -> None:
        """A config edit and its `pulumi up`, as one: a failed (or refused) preview or up undoes the edit."""
        undo = self._change(changes, what)
        try:
            self._up(what, retiring)
        except Exception:
            self._undo(undo, f"the up for {what} did not succeed")
            raise

    def _up(self, what: str, retiring: Optional[str] = None) -> None:
        """`pulumi up`, once a preview shows it deletes or replaces no stateful resource.

        The same guard as `python -m deploy up` (deploy.automation's data-loss risks): a pending
        edit elsewhere in the stack must not ride along on an upgrade step. Retiring a colour
        deletes that colour's StatefulSet and (retained) PVC, and nothing else stateful. Neither the
        preview nor the up may move traffic: a change of the percona Service is refused here (only
        a verified switch deploys it).
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
        moving = [urn for urn, (type_, _) in guard.steps.items() if self._is_service(type_, urn)]
        if moving:
            raise SwitchRefusedError(
                f"the up for {what} would also change the percona Service ({', '.join(moving)}): traffic moves only "
                f"after a verification; nothing was deployed. Run `pulumi preview` to see why"
            )
        self.out(f"  pulumi up ({what}) ...")
        self.stack.up(on_output=lambda line: self.out("    " + line.rstrip("\n")))

    # -- cluster looks ----------------------------------------------------------------------------

    @staticmethod
    def pod(db: DatabaseSettings, colour: str) -> str:
        return f"{db.name}-{colour}-0"

    @staticmethod
    def host(db: DatabaseSettings, colour: str) -> str:
        """The colour's pod through its headless peers Service (not the percona Service)."""
        return f"{db.name}-{colour}-0.{db.name}-{colour}.{db.namespace}.svc.cluster.local"

    def _sql(self, db: DatabaseSettings, colour: str, sql: str) -> list[list[str]]:
        return self.probe.query(db.namespace, self.pod(db, colour), sql)

    def _require_ready(self, db: DatabaseSettings, colour: str) -> None:
        if not self.probe.pod_ready(db.namespace, self.pod(db, colour)):
            raise WorkflowError(f"{colour}'s pod {db.namespace}/{self.pod(db, colour)} is not ready")

    def mysqld_settings(self, db: DatabaseSettings, colour: str) -> dict[str, str]:
        """The options in effect on the colour (what mysqld runs with, not what a file says)."""
        (row,) = self._sql(db, colour, MYSQLD_CHECK)
        names = ["gtid_mode", "enforce_gtid_consistency", "log_bin", "sync_binlog", "innodb_flush_log_at_trx_commit"]
        return dict(zip([*names, "server_id", "server_uuid"], row, strict=True))

    def _require_mysqld_options(self, db: DatabaseSettings, colour: str) -> dict[str, str]:
        actual = self.mysqld_settings(db, colour)
        wanted = {
            "gtid_mode": "ON",
            "enforce_gtid_consistency": "ON",
            "log_bin": "1",
            "sync_binlog": "1",
            "innodb_flush_log_at_trx_commit": "1",
            "server_id": str(SERVER_IDS[colour]),
        }
        wrong = [f"{name}={actual[name]} (needs {value})" for name, value in wanted.items() if actual[name] != value]
        if wrong:
            raise RefusedError(
                f"{colour} does not run with the options blue/green relies on: {', '.join(wrong)}. Deploy the "
                f"program's mysqld options (`python -m deploy up --stack {self.stack.name}` rolls the pod with "
                f"its ConfigMap {db.name}-{colour}-mysqld), and check that no SET PERSIST overrides them; nothing "
                f"was changed"
            )
        return actual

    def _value(self, db: DatabaseSettings, colour: str, sql: str) -> str:
        """A one-value query's answer; "" when it printed an empty line (an empty GTID set)."""
        rows = self._sql(db, colour, sql)
        return rows[0][0] if rows else ""

    def gtid_executed(self, db: DatabaseSettings, colour: str) -> GtidSet:
        return GtidSet.parse(self._value(db, colour, GTID_EXECUTED))

    def frozen(self, db: DatabaseSettings, colour: str) -> bool:
        """super_read_only is on now and persisted (so a restart keeps it on)."""
        running = self._sql(db, colour, FROZEN) == [["1"]]
        persisted = dict((row[0], row[1]) for row in self._sql(db, colour, PERSISTED))
        return running and persisted.get("super_read_only", "").upper() in ("ON", "1")

    def _freeze(self, db: DatabaseSettings, colour: str) -> None:
        # Enabling super_read_only waits for running commits: give up after a minute rather than
        # hang behind a long one. Open transactions are refused at COMMIT from then on.
        self._sql(db, colour, FREEZE)

    def _require_frozen(self, db: DatabaseSettings, colour: str, before: str) -> None:
        if not self.frozen(db, colour):
            raise WorkflowError(
                f"{colour} is not frozen (super_read_only, persisted) right before {before}: it could take writes "
                f"that would be left behind; nothing was moved. Run the same command again (it freezes {colour} first)"
            )

    def _unfreeze(self, db: DatabaseSettings, colour: str) -> None:
        self._sql(db, colour, UNFREEZE)

    def _kill_sessions(self, db: DatabaseSettings, colour: str) -> None:
        """End the colour's client sessions: pools reconnect, through the Service, to the live colour.

        A Service selector change does not end established TCP connections (kube-proxy keeps them).
        """
        ids = [row[0] for row in self._sql(db, colour, PROCESSLIST)]
        killed = 0
        for session in ids:
            try:
                self._sql(db, colour, f"KILL CONNECTION {int(session)}")
                killed += 1
            except ProbeError as error:
                if "ERROR 1094" not in str(error):  # it ended on its own meanwhile
                    raise
        self.out(
            f"  {colour}: {killed} client session{'s' if killed != 1 else ''} killed "
            "(they reconnect to the live colour)"
        )

    def row_counts(self, db: DatabaseSettings, colour: str) -> dict[str, int]:
        """Exact row counts of every user table (COUNT(*), not information_schema's estimate)."""
        tables = [
            (bytes.fromhex(row[0]).decode(), bytes.fromhex(row[1]).decode())
            for row in self._sql(db, colour, USER_TABLES)
        ]
        if not tables:
            return {}
        # Rows are matched back by position, so no table name is ever put inside a string literal.
        sql = " UNION ALL ".join(
            f"SELECT {index}, COUNT(*) FROM {_quote(schema)}.{_quote(table)}"
            for index, (schema, table) in enumerate(tables)
        )
        counts = {int(row[0]): int(row[1]) for row in self._sql(db, colour, sql)}
        return {f"{schema}.{table}": counts[index] for index, (schema, table) in enumerate(tables)}

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

    # -- one source of truth --------------------------------------------------------------------

    def _require_agreement(self, db: DatabaseSettings) -> None:
        """The stack config knows every colour the stack has deployed (it is not an older copy).

        A colour the file marks retired is newer, not older: an interrupted --retire, finished by
        running it again. A colour the file does not name at all is one it has never seen.
        """
        deployed = guards.deployed_database(self.stack.export_stack())
        if deployed is None:
            return
        missing = sorted(set(deployed.colours) - set(db.colours))
        if missing or deployed.active not in db.colours:
            raise RefusedError(
                f"{stack_file(self.stack.name)} is older than what stack {self.stack.name} has deployed "
                f"(live {deployed.active}, colours {', '.join(deployed.colours)}; this file: active {db.active}, "
                f"colours {', '.join(db.serving)}). Use the stack file committed by the last blue/green run "
                f"(git pull), then run the command again; nothing was changed"
            )

    # -- the switch: only the Service may change ----------------------------------------------

    @staticmethod
    def _is_service(type_: str, urn: str) -> bool:
        return type_ == SERVICE_TYPE and f"{COMPONENT_TYPE}${SERVICE_TYPE}::" in urn and urn.endswith("-service")

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

    def _propose_switch(self, db: DatabaseSettings, to: str) -> Optional[str]:
        """Set `active` to `to` in the stack config, if a preview then shows only the Service's update.

        Returns the Service's URN, or None when the Service already selects `to`. Anything else in
        the preview, or a failed preview, puts `active` back and raises: nothing is deployed.
        """
        undo = self._change([(("active",), to)], f"active = {to}") if to != db.active else []
        try:
            changes = self._planned_changes()
        except Exception:
            self._undo(undo, "the preview of the switch failed")
            raise
        if len(changes) == 1 and changes[0][0] == "update" and self._is_service(changes[0][1], changes[0][2]):
            return changes[0][2]
        if not changes:
            return None
        described = "; ".join(f"{op} {urn}" for op, _, urn in changes)
        self._undo(undo, "the switch would change more than the Service")
        raise SwitchRefusedError(
            f"switching to {to} would not change only the percona Service ({described}); nothing was deployed. "
            f"Run `pulumi preview` to see why"
        )

    def _deploy_switch(self, to: str, service_urn: str) -> None:
        """`pulumi up` targeted at the Service alone: whatever else might change meanwhile is left alone."""
        self.out(f"  pulumi up --target {service_urn} ...")
        self.stack.up(target=[service_urn], on_output=lambda line: self.out("    " + line.rstrip("\n")))

    def _verify(self, db: DatabaseSettings, source: str, target: str, abandoned: GtidSet) -> None:
        """The fresh verification every move of traffic from `source` to `target` needs, right before it.

        Both run with the mysqld options; they are two servers (own server_uuid); `source` is
        frozen (persisted); `target`'s gtid_executed equals `source`'s (save the transactions a
        rollback abandons on purpose); every table has as many rows on both.
        """
        self._require_ready(db, target)
        if self._sql(db, target, "SELECT 1") != [["1"]]:
            raise WorkflowError(f"{target} does not answer SELECT 1")
        ours = self._require_mysqld_options(db, target)
        theirs = self._require_mysqld_options(db, source)
        if ours["server_uuid"] == theirs["server_uuid"]:
            raise RefusedError(
                f"{target} runs with {source}'s server_uuid {ours['server_uuid']} (its auto.cnf was copied and kept): "
                f"their GTIDs cannot be told apart. Restart {target}'s pod (its init container removes the copy)"
            )
        for colour in (source, target):
            self.out(f"  {colour}: Percona Server {self._sql(db, colour, 'SELECT VERSION()')[0][0]}")
        self._require_frozen(db, source, f"traffic moves to {target}")
        have, copied = self.gtid_executed(db, source), self.gtid_executed(db, target)
        self.out(f"  gtid_executed: {source} {have or '(empty)'}; {target} {copied or '(empty)'}")
        lacking, extra = (have - copied) - abandoned, copied - have
        if lacking or extra:
            parts = []
            if lacking:
                parts.append(f"{target} lacks {lacking} ({len(lacking)} transactions {source} committed)")
            if extra:
                parts.append(f"{target} has {extra}, which {source} has not")
            raise RefusedError(
                f"{target} does not hold exactly {source}'s transactions: {'; '.join(parts)}. The Service still "
                f"selects {source}. If {source} took writes after the snapshot, retire {target} "
                f"(--retire {target}) and upgrade again"
            )
        before, after = self.row_counts(db, source), self.row_counts(db, target)
        for table in sorted(set(before) | set(after)):
            self.out(f"  {table}: {source} {before.get(table, '-')} rows, {target} {after.get(table, '-')} rows")
        if before != after and not abandoned:
            differing = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
            raise RefusedError(
                f"{target} does not hold the same rows as {source} ({', '.join(differing)}) though their GTIDs "
                f"agree; the Service still selects {source}"
            )

    def _switch(self, source: str, target: str, abandoned: Optional[GtidSet] = None) -> None:
        """Move traffic from `source` to `target`: verified right before the targeted up, or not at all.

        Idempotent: when the Service already selects `target` (an earlier run moved it, after its
        verification), only what follows the move is done again.
        """
        db = self.database()
        self._require_ready(db, source)
        service_urn = self._propose_switch(db, target)
        if service_urn is None:
            self.out(f"  the percona Service already selects {target}")
            self._unfreeze(db, target)
        else:
            try:
                self._verify(db, source, target, abandoned or GtidSet())
                self._unfreeze(db, target)
                self._deploy_switch(target, service_urn)
            except Exception:
                # The Service still selects the source: so does the stack config.
                self._undo([(("active",), source)], "traffic did not move")
                raise
        self._require_frozen(db, source, f"{source}'s sessions are ended")
        self._kill_sessions(db, source)

    # -- the commands -----------------------------------------------------------------------------

    def upgrade(self, target: str, image: Optional[str] = None) -> None:
        db = self.database()
        self._require_agreement(db)
        live = db.active
        self.out(f"[1/6] preflight: {db.name} serves from {live} ({db.colours[live].image}); target {target}")
        if target == live:
            source = self.predecessor(db)
            if source is None:
                self._require_ready(db, live)
                self._require_mysqld_options(db, live)
                self.out(f"  {target} is live and no running colour was upgraded into it: nothing to switch")
                return
            self.out(f"  {target} is already live in the stack config: finishing the switch from {source}")
            self._switch(source, target)
            self._done(live=target, old=source)
            return
        self._require_ready(db, live)
        self._require_mysqld_options(db, live)
        live_claim = db.claim(live)
        existing = db.colours.get(target)  # type: ignore[call-overload]
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
        self._done(live=target, old=live)

    def _upgrade_into(self, db: DatabaseSettings, target: str, image: str, snapshot: str) -> None:
        live = db.active
        live_claim = db.claim(live)
        existing = db.colours.get(target)  # type: ignore[call-overload]
        self.out(f"[2/6] freeze: writes to {live} stop (SET PERSIST super_read_only) so the snapshot holds every row")
        self._freeze(db, live)

        self.out(f"[3/6] snapshot: VolumeSnapshot {snapshot} of {live}'s PVC {live_claim}")
        if snapshot not in db.snapshots:
            self._require_frozen(db, live, f"the snapshot {snapshot}")
            self._apply([(("snapshots", snapshot, "source"), live_claim)], f"snapshot {snapshot}")
        else:
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
        self._apply(changes, f"colour {target}")

        self.out(
            f"[5/6] verify, [6/6] switch: {target} holds exactly {live}'s transactions, then the Service selects it"
        )
        self._switch(live, target)

    def _done(self, live: str, old: str) -> None:
        self.out(
            f"done: {live} is live. {old} stays read-only for rollback "
            f"(python -m deploy bluegreen --stack {self.stack.name} --rollback); "
            f"retire it when sure (--retire {old})."
        )

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

    def _service_pending(self) -> bool:
        """A preview shows the percona Service's selector would change (the config's active is not deployed)."""
        return any(self._is_service(type_, urn) for _, type_, urn in self._planned_changes())

    def rollback(self, abandon_writes: bool = False) -> None:
        db = self.database()
        self._require_agreement(db)
        live = db.active
        previous = self.predecessor(db)
        if previous is not None:
            source, target = live, previous
            self.out(f"[1/4] preflight: {live} is live; rolling back to {previous}")
        else:
            running = [c for c in self.successors(db) if self.probe.pod_ready(db.namespace, self.pod(db, c))]
            self._require_ready(db, live)
            self._require_mysqld_options(db, live)
            if not running or not self._service_pending():
                # Either nothing was upgraded from the live colour, or the Service already selects it
                # (an earlier rollback moved it, or an upgrade stopped before its switch).
                self.out(f"{live} is live and the percona Service selects it: nothing to switch back")
                for colour in running:
                    self.out(f"  freezing {colour}, upgraded from {live}: it must take no write once {live} is live")
                    self._freeze(db, colour)
                    self._kill_sessions(db, colour)
                    only_there = self.gtid_executed(db, colour) - self.gtid_executed(db, live)
                    if only_there:
                        self.out(
                            f"  warning: {colour} holds transactions {live} has not ({only_there}); they stay on "
                            f"{colour}'s volume {db.claim(colour)}"
                        )
                self.out(f"  lifting any write freeze on {live} (an interrupted upgrade leaves it read-only)")
                self._unfreeze(db, live)
                return
            source, target = running[0], live
            self.out(f"[1/4] preflight: the stack config already selects {live}; the Service still selects {source}")
            # An earlier rollback stopped between its config edit and its up: the config says what the
            # cluster does again (every other up would otherwise move the Service unverified).
            self._undo([(("active",), source)], f"the percona Service still selects {source}")
        self._require_ready(db, source)
        self._require_ready(db, target)
        self._require_mysqld_options(db, source)
        self._require_mysqld_options(db, target)
        self.out(f"[2/4] freeze {source}: it takes no more writes (open transactions fail at COMMIT)")
        self._freeze(db, source)
        newer, older = self.gtid_executed(db, source), self.gtid_executed(db, target)
        missing, diverged = newer - older, older - newer
        self.out(f"  {source} committed {len(missing)} transaction{'s' if len(missing) != 1 else ''} {target} lacks")
        abandoned = GtidSet()
        if diverged and not abandon_writes:
            raise RefusedError(
                f"{target} holds transactions {source} has not ({diverged}) besides the {len(missing)} only {source} "
                f"has ({missing or 'none'}): the colours diverged and no replay can join them. The Service still "
                f"selects {source}, frozen. --abandon-writes rolls back anyway, keeping {source}'s volume and a "
                "snapshot"
            )
        if missing and abandon_writes:
            abandoned = missing
            kept = self._keep_snapshot(db, source)
            self.out(
                f"  abandoning {missing} on purpose: they stay on {source}'s volume {db.claim(source)} (retained) and "
                f"in VolumeSnapshot {kept}. To get them back, replay them into the live colour: kubectl -n "
                f"{db.namespace} exec {self.pod(db, source)} -c mysql -- sh -c 'cd {DATADIR} && mysqlbinlog "
                f"--include-gtids={missing} $(cat binlog.index) | mysql --defaults-extra-file={CLIENT_DIR}/"
                f"{ROOT_CLIENT_KEY} --host={self.host(db, target)}'"
            )
        elif missing:
            self.out(f"[3/4] replay: {source}'s binary log since the switch ({missing}) into {target}")
            self._replay(db, source, target, missing)
        self.out(f"[4/4] switch: the percona Service selects {target} once it holds every transaction of {source}")
        self._switch(source, target, abandoned)
        self.out(
            f"done: {target} is live again with every transaction {source} committed"
            + (f" save the abandoned {abandoned}" if abandoned else "")
            + f"; {source} stays, read-only, until you retire it (--retire {source})"
        )

    def _replay(self, db: DatabaseSettings, source: str, target: str, missing: GtidSet) -> None:
        purged = GtidSet.parse(self._value(db, source, GTID_PURGED)) & missing
        if purged:
            raise RefusedError(
                f"{source}'s binary logs no longer hold {purged} (purged), so they cannot be replayed into {target}; "
                f"the Service still selects {source}, frozen. --abandon-writes rolls back anyway, keeping them on "
                f"{source}'s volume and a snapshot"
            )
        versions = {c: self._sql(db, c, "SELECT VERSION()")[0][0] for c in (source, target)}
        if _series(versions[source]) != _series(versions[target]):
            raise RefusedError(
                f"{source} runs {versions[source]} and {target} {versions[target]}: a binary log of one release "
                f"series is not replayed into another. The Service still selects {source}, frozen; --abandon-writes "
                f"rolls back anyway, keeping its writes on its volume and a snapshot"
            )
        # The newer server's own mysqlbinlog reads its files; the row events of one 8.0 series apply
        # on an older patch release. Root (SUPER) writes under read_only; applications cannot.
        self._sql(db, target, REPLAY_ONLY)
        self.probe.replay(db.namespace, self.pod(db, source), self.host(db, target), str(missing))
        after = self.gtid_executed(db, target)
        if not missing <= after:
            raise RefusedError(
                f"the replay left {missing - after} missing on {target}; the Service still selects {source}, frozen"
            )

    def _keep_snapshot(self, db: DatabaseSettings, colour: str) -> str:
        """A retained VolumeSnapshot of the colour's PVC, for writes abandoned on purpose."""
        claim = db.claim(colour)
        kept = sorted(s for s, spec in db.snapshots.items() if spec.source == claim and "-kept-" in s)
        snapshot = kept[-1] if kept else f"{colour}-kept-{self.now():%Y%m%d%H%M%S}"
        if snapshot not in db.snapshots:
            self._apply([(("snapshots", snapshot, "source"), claim)], f"snapshot {snapshot}")
        else:
            self._up(f"snapshot {snapshot}")  # in the config already: an interrupted run may not have deployed it
        self._wait_for_snapshot(db, snapshot)
        return snapshot

    def retire(self, colour: str) -> None:
        db = self.database()
        self._require_agreement(db)
        spec = db.colours.get(colour)  # type: ignore[call-overload]
        deployed = guards.deployed_database(self.stack.export_stack())
        if spec is not None and spec.retired and deployed is not None and colour in deployed.colours:
            self.out(f"[1/1] retire {colour}: the stack config retires it already; deploying that")
            self._up(f"retire {colour}", retiring=colour)
            return
        if spec is None or spec.retired:
            self.out(f"{colour} is not running: nothing to retire")
            return
        claim = db.claim(colour)  # type: ignore[arg-type]
        self.out(f"[1/1] retire {colour}: its StatefulSet goes; its PVC {claim} is retained")
        # Refused by the settings (naming colours.<colour>.retired) when it is the live colour.
        self._apply([(("colours", colour, "retired"), True)], f"retire {colour}", retiring=colour)
        self.out(
            f"done: {colour} no longer runs. Its volume is kept: delete it on purpose with "
            f"`kubectl -n {db.namespace} delete pvc {claim}` once you are sure"
        )


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _leaves(path: tuple[str, ...], value: Any) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves((*path, key), item)]
    return [(path, value)]


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
        # The password never leaves the pod: the mounted option file holds it (no MYSQL_PWD, no
        # argument). --raw: values come back as stored, not with --batch's escapes.
        out = self._kubectl("-n", namespace, "exec", pod, "-c", "mysql", "--", *MYSQL_CLIENT, f"--execute={sql}")
        return parse_batch(out)

    def replay(self, namespace: str, source_pod: str, target_host: str, gtids: str) -> None:
        # In the source (newer) colour's pod: its own mysqlbinlog reads its own binary logs, every
        # file the index lists; transactions keep their GTIDs (SET GTID_NEXT), so one the target
        # already has is skipped. pipefail: a failing mysqlbinlog is a failing replay.
        script = (
            'set -eu -o pipefail; cd "$1"; mysqlbinlog --include-gtids="$2" $(cat binlog.index) '
            '| mysql --defaults-extra-file="$3" --host="$4" --port=3306'
        )
        self._kubectl(
            "-n", namespace, "exec", source_pod, "-c", "mysql", "--",
            "bash", "-c", script, "replay", DATADIR, gtids, f"{CLIENT_DIR}/{ROOT_CLIENT_KEY}", target_host,
        )  # fmt: skip


#: `mysql` as root through the mounted option file (--defaults-extra-file must come first).
MYSQL_CLIENT = (
    "mysql",
    f"--defaults-extra-file={CLIENT_DIR}/{ROOT_CLIENT_KEY}",
    "--batch",
    "--raw",
    "--skip-column-names",
)


def parse_batch(out: str) -> list[list[str]]:
    """`mysql --batch --raw --skip-column-names` output: one row a line, columns tab-separated."""
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
    parser.add_argument(
        "--abandon-writes",
        action="store_true",
        help="--rollback even when the new colour's writes cannot be replayed into the old one (they are kept "
        "on its volume and a retained snapshot, and the command says how to replay them)",
    )
    parser.add_argument(
        "--commit",
        action="store_true",
        help="git commit the stack file this command changed (otherwise it says what to commit)",
    )
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


def git(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *arguments], cwd=PROJECT_DIR, capture_output=True, text=True, check=False)


def tell_what_to_commit(
    stack: str,
    do_commit: bool,
    out: Callable[[str], None],
    commit: Optional[Callable[[list[str]], subprocess.CompletedProcess[str]]] = None,
) -> None:
    """The stack file is the one source of truth: CI's `deploy up` refuses (exit 5) an older one."""
    path = stack_file(stack)
    message = f"bluegreen: {stack}'s database state as deployed by python -m deploy bluegreen"
    if not do_commit:
        out(
            f"the stack config changed: commit it, or CI's `python -m deploy up --stack {stack}` refuses (exit 5):\n"
            f"  git add {path} && git commit -m {shlex.quote(message)} && git push"
        )
        return
    run_git = commit or git
    for arguments in (["add", path], ["commit", "-m", message, "--", path]):
        result = run_git(arguments)
        if result.returncode != 0:
            out(
                f"git {' '.join(arguments[:2])} failed: {(result.stderr or result.stdout).strip()}; "
                f"commit {path} by hand"
            )
            return
    out(f"committed {path}; push it so CI deploys the same state")


def run(
    args: argparse.Namespace,
    *,
    stack_factory: Callable[[str], StackLike] = open_bluegreen_stack,
    probe_factory: Callable[[StackLike, Optional[str], Optional[str]], ClusterProbe] = probe_for,
    out: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    commit: Optional[Callable[[list[str]], subprocess.CompletedProcess[str]]] = None,
) -> int:
    probe: Optional[ClusterProbe] = None
    try:
        stack = stack_factory(args.stack)
        probe = probe_factory(stack, args.context, args.kubeconfig)
        workflow = Workflow(stack, probe, out=out, sleep=sleep, snapshot_timeout=args.snapshot_timeout)
        try:
            if args.to:
                workflow.upgrade(args.to, args.image)
            elif args.rollback:
                workflow.rollback(abandon_writes=args.abandon_writes)
            else:
                workflow.retire(args.retire)
        finally:
            if workflow.changed_config:
                tell_what_to_commit(args.stack, args.commit, out, commit)
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
