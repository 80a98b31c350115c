"""A model of a MySQL 8.0 server, as much of it as the blue/green workflow relies on.

What it keeps, as MySQL does:
- a data directory (the volume): tables, `gtid_executed`, binary log files, `auto.cnf` (the
  server_uuid) and `mysqld-auto.cnf` (SET PERSIST). A snapshot copies all of it.
- startup: options are MySQL's defaults, then the option files, then mysqld-auto.cnf; a missing
  auto.cnf gets a new server_uuid; each start opens a new binary log file; gtid_mode=ON without
  enforce_gtid_consistency=ON does not start. SET GLOBAL is forgotten by a restart, SET PERSIST not.
- read-only: super_read_only refuses every write, even a SUPER user's; read_only alone refuses the
  writes of users without SUPER/CONNECTION_ADMIN. Enabling super_read_only enables read_only,
  disabling read_only disables super_read_only. An open transaction is refused at COMMIT.
- GTIDs: with gtid_mode=ON every commit gets `server_uuid:n` and goes to the binary log; a
  replayed transaction keeps its GTID and is skipped when already executed. With gtid_mode=OFF
  commits are anonymous: no GTID set shows them.
- `@@global.gtid_executed` prints sources separated by ",\\n" as MySQL does; a statement the model
  does not know raises NotImplementedError (never a silent success), one MySQL refuses raises
  MySQLError with MySQL's error code and message.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional

#: MySQL 8.0's defaults for the variables the workflow reads (binary logging is on by default).
DEFAULTS = {
    "gtid_mode": "OFF",
    "enforce_gtid_consistency": "OFF",
    "log_bin": "1",
    "sync_binlog": "1",
    "innodb_flush_log_at_trx_commit": "1",
    "server_id": "1",
    "read_only": "0",
    "super_read_only": "0",
    "lock_wait_timeout": "31536000",
}
BOOLEAN = {"log_bin", "read_only", "super_read_only"}
READ_ONLY_VARIABLES = {"log_bin", "server_uuid", "gtid_executed", "version", "enforce_gtid_consistency_startup"}
GTID_MODE_STEPS = ["OFF", "OFF_PERMISSIVE", "ON_PERMISSIVE", "ON"]

USER_TABLES = (
    "SELECT HEX(table_schema), HEX(table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema') "
    "ORDER BY table_schema, table_name"
)


class MySQLError(Exception):
    """A statement MySQL refuses: `ERROR code (state): message`, as the mysql client prints it."""

    def __init__(self, code: int, state: str, message: str):
        super().__init__(f"ERROR {code} ({state}): {message}")
        self.code = code


def read_only_error(option: str) -> MySQLError:
    return MySQLError(
        1290, "HY000", f"The MySQL server is running with the --{option} option so it cannot execute this statement"
    )


Gtid = tuple[str, int]


@dataclass(frozen=True)
class Transaction:
    """Rows written (table, row id, value); gtid None: an anonymous transaction (gtid_mode=OFF)."""

    gtid: Optional[Gtid]
    changes: tuple[tuple[str, int, int], ...]


@dataclass
class DataDir:
    """What a volume holds: everything a snapshot copies."""

    tables: dict[str, dict[int, int]] = field(default_factory=dict)
    gtids: set[Gtid] = field(default_factory=set)
    purged: set[Gtid] = field(default_factory=set)
    binlogs: list[tuple[str, list[Transaction]]] = field(default_factory=list)
    auto_cnf: Optional[str] = None
    persisted: dict[str, str] = field(default_factory=dict)
    #: Files outside mysqld's own (the init container's marker).
    files: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> DataDir:
        return copy.deepcopy(self)

    def flush_and_purge(self) -> None:
        """FLUSH BINARY LOGS, then PURGE BINARY LOGS TO the new file: the GTIDs of every older file
        move to gtid_purged (the active file cannot be purged)."""
        self.binlogs.append((f"binlog.{len(self.binlogs) + 1:06d}", []))
        while len(self.binlogs) > 1:
            _, transactions = self.binlogs.pop(0)
            self.purged |= {t.gtid for t in transactions if t.gtid}


def render_gtids(gtids: Iterable[Gtid]) -> str:
    """MySQL's text of a GTID set: sources in order, intervals merged, ",\\n" between sources."""
    by_uuid: dict[str, list[int]] = {}
    for uuid, number in gtids:
        by_uuid.setdefault(uuid, []).append(number)
    parts = []
    for uuid in sorted(by_uuid):
        numbers = sorted(by_uuid[uuid])
        spans = []
        for _, group in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
            run = [n for _, n in group]
            spans.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        parts.append(uuid + ":" + ":".join(spans))
    return ",\n".join(parts)


def parse_options(text: str) -> dict[str, str]:
    """The [mysqld] group of an option file, names with '-' or '_' alike."""
    options: dict[str, str] = {}
    group = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            group = line.strip("[]").strip()
            continue
        if group != "mysqld":
            continue
        name, _, value = line.partition("=")
        options[name.strip().replace("-", "_")] = value.strip() or "1"
    return options


def _expressions(text: str) -> list[str]:
    """A select list, split on commas outside parentheses and quotes."""
    parts, current, depth, quote = [], [], 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _split(script: str) -> list[str]:
    """Statements of a script, split on ';' outside quotes and backticks."""
    statements, current, quote = [], [], ""
    for char in script:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "'`\"":
            quote = char
        if char == ";":
            statements.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    statements.append("".join(current).strip())
    return [s for s in statements if s]


_uuids = itertools.count(1)


def next_uuid() -> str:
    return f"{next(_uuids):08x}-0000-4000-8000-{0xA11CE:012x}"


class Server:
    """mysqld on a data directory, with option-file `options` and a version."""

    def __init__(
        self,
        datadir: DataDir,
        options: Mapping[str, str],
        version: str = "8.0.43-34",
        uuid_source: Callable[[], str] = next_uuid,
    ):
        self.datadir = datadir
        self.options = dict(options)
        self.version = version
        self._uuid_source = uuid_source
        self.running = False
        self.globals: dict[str, str] = {}
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count(8)
        self.start()

    # -- process --------------------------------------------------------------------------------

    def start(self) -> None:
        values = dict(DEFAULTS)
        for source in (self.options, self.datadir.persisted):
            for name, value in source.items():
                values[name] = _normalise(name, value)
        if values["gtid_mode"] == "ON" and values["enforce_gtid_consistency"] != "ON":
            raise MySQLError(1784, "HY000", "GTID_MODE = ON requires ENFORCE_GTID_CONSISTENCY = ON")
        if values["super_read_only"] == "1":
            values["read_only"] = "1"  # super_read_only at startup implies read_only
        if self.datadir.auto_cnf is None:
            self.datadir.auto_cnf = self._uuid_source()
        values["server_uuid"] = self.datadir.auto_cnf
        self.globals = values
        if values["log_bin"] == "1":
            self.datadir.binlogs.append((f"binlog.{len(self.datadir.binlogs) + 1:06d}", []))
        self.sessions = {}
        self.running = True

    def stop(self) -> None:
        for session in self.sessions.values():
            session.killed = True
        self.sessions = {}
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients --------------------------------------------------------------------------------

    def connect(self, user: str = "root", *, privileged: Optional[bool] = None) -> Session:
        """A client session; root (and any `privileged` user) has SUPER and CONNECTION_ADMIN."""
        if not self.running:
            raise MySQLError(2003, "HY000", "Can't connect to MySQL server (111)")
        session = Session(self, next(self._ids), user, user == "root" if privileged is None else privileged)
        self.sessions[session.id] = session
        return session

    def run(self, script: str) -> list[list[str]]:
        """`mysql --execute=script` as root: statements in order, stopping at the first error."""
        session = self.connect()
        try:
            rows: list[list[str]] = []
            for statement in _split(script):
                rows += session.execute(statement)
            return rows
        finally:
            self.sessions.pop(session.id, None)

    # -- the data -------------------------------------------------------------------------------

    @property
    def gtid_executed(self) -> set[Gtid]:
        return set(self.datadir.gtids)

    def _check_writable(self, session: Session) -> None:
        if self.globals["super_read_only"] == "1":
            raise read_only_error("super-read-only")
        if self.globals["read_only"] == "1" and not session.privileged:
            raise read_only_error("read-only")

    def _commit(
        self, session: Session, changes: list[tuple[str, int, int]], gtid: Optional[Gtid] = None
    ) -> Optional[Gtid]:
        self._check_writable(session)
        if gtid is None and self.globals["gtid_mode"] == "ON":
            own = [n for uuid, n in self.datadir.gtids if uuid == self.globals["server_uuid"]]
            gtid = (self.globals["server_uuid"], max(own, default=0) + 1)
        for table, row, value in changes:
            self.datadir.tables.setdefault(table, {})[row] = value
        if gtid is not None:
            self.datadir.gtids.add(gtid)
        if self.globals["log_bin"] == "1":
            self.datadir.binlogs[-1][1].append(Transaction(gtid, tuple(changes)))
        return gtid

    def replay(self, source: DataDir, gtids: set[Gtid]) -> int:
        """`mysqlbinlog --include-gtids=<gtids> <source's binary logs> | mysql` as root. Returns the count applied.

        Transactions keep their GTIDs (SET GTID_NEXT); one already executed here is skipped; a GTID
        in a purged file is not in any log, so it is not replayed. Stops at the first refusal.
        """
        session = self.connect()
        applied = 0
        try:
            for _, transactions in source.binlogs:
                for transaction in transactions:
                    if transaction.gtid is None or transaction.gtid not in gtids:
                        continue
                    if transaction.gtid in self.datadir.gtids:
                        continue
                    self._commit(session, list(transaction.changes), transaction.gtid)
                    applied += 1
        finally:
            self.sessions.pop(session.id, None)
        return applied

    def rows(self) -> dict[str, dict[int, int]]:
        return copy.deepcopy(self.datadir.tables)


def _normalise(name: str, value: str) -> str:
    upper = str(value).strip().strip("'\"").upper()
    if name in BOOLEAN or name == "log_bin":
        if name == "log_bin":
            return "0" if upper in ("0", "OFF") else "1"
        return "1" if upper in ("1", "ON", "TRUE") else "0"
    if name in ("gtid_mode", "enforce_gtid_consistency"):
        return {"1": "ON", "0": "OFF", "TRUE": "ON", "FALSE": "OFF"}.get(upper, upper)
    return str(value).strip().strip("'\"")


_SET = re.compile(r"^SET\s+(PERSIST|GLOBAL|SESSION)\s+(\w+)\s*=\s*(\S+)$", re.IGNORECASE)
_SELECT_VARIABLES = re.compile(r"^SELECT\s+(.+)$", re.IGNORECASE | re.DOTALL)
_VARIABLE = re.compile(r"^@@global\.(\w+)$", re.IGNORECASE)
_REPLACED = re.compile(r"^REPLACE\(@@global\.(\w+), '\\n', ''\)$", re.IGNORECASE)
_COUNT = re.compile(r"SELECT (\d+), COUNT\(\*\) FROM `((?:[^`]|``)+)`\.`((?:[^`]|``)+)`")
_KILL = re.compile(r"^KILL\s+(?:CONNECTION\s+)?(\d+)$", re.IGNORECASE)
PERSISTED = (
    "SELECT variable_name, variable_value FROM performance_schema.persisted_variables "
    "WHERE variable_name IN ('read_only', 'super_read_only') ORDER BY variable_name"
)
PROCESSLIST = (
    "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
    "AND user NOT IN ('system user', 'event_scheduler') ORDER BY id"
)


@dataclass
class Session:
    server: Server
    id: int
    user: str
    privileged: bool
    killed: bool = False
    pending: Optional[list[tuple[str, int, int]]] = None

    def _alive(self) -> None:
        if self.killed or not self.server.running or self.server.sessions.get(self.id) is not self:
            self.killed = True
            raise MySQLError(2013, "HY000", "Lost connection to MySQL server during query")

    # -- a client's writes ----------------------------------------------------------------------

    def begin(self) -> None:
        self._alive()
        self.pending = []

    def write(self, table: str, row: int, value: int) -> None:
        """INSERT (a new row id) or UPDATE (an existing one): refused at once when read-only."""
        self._alive()
        self.server._check_writable(self)
        if self.pending is None:
            self.server._commit(self, [(table, row, value)])
            return
        self.pending.append((table, row, value))

    def commit(self) -> Optional[Gtid]:
        self._alive()
        changes, self.pending = self.pending or [], None
        return self.server._commit(self, changes)

    # -- statements -----------------------------------------------------------------------------

    def execute(self, statement: str) -> list[list[str]]:
        self._alive()
        server = self.server
        text = " ".join(statement.split())
        if text.upper() == "SELECT 1":
            return [["1"]]
        if text.upper() == "SELECT VERSION()":
            return [[server.version]]
        if text == " ".join(USER_TABLES.split()):
            return [
                [part.encode().hex().upper() for part in table.split(".", 1)] for table in sorted(server.datadir.tables)
            ]
        if text == PERSISTED:
            return [
                [name, "ON" if server.datadir.persisted[name] == "1" else "OFF"]
                for name in sorted(server.datadir.persisted)
                if name in ("read_only", "super_read_only")
            ]
        if text == PROCESSLIST:
            return [[str(i)] for i in sorted(server.sessions) if i != self.id]
        counted = _COUNT.findall(text)
        if counted and len(counted) == text.count("SELECT") and text.startswith("SELECT"):
            unquote = lambda name: name.replace("``", "`")  # noqa: E731
            return [[i, str(len(server.datadir.tables[f"{unquote(s)}.{unquote(t)}"]))] for i, s, t in counted]
        kill = _KILL.match(text)
        if kill:
            victim = server.sessions.pop(int(kill.group(1)), None)
            if victim is None:
                raise MySQLError(1094, "HY000", f"Unknown thread id: {kill.group(1)}")
            victim.killed = True
            return []
        setting = _SET.match(text)
        if setting:
            self._set(setting.group(1).upper(), setting.group(2).lower(), setting.group(3))
            return []
        select = _SELECT_VARIABLES.match(text)
        if select:
            row = []
            for expression in _expressions(select.group(1)):
                plain, replaced = _VARIABLE.match(expression), _REPLACED.match(expression)
                if plain is None and replaced is None:
                    raise NotImplementedError(f"the SQL fake does not know: {statement}")
                name = (plain or replaced).group(1).lower()  # type: ignore[union-attr]
                value = self._variable(name)
                row.append(value.replace("\n", "") if replaced else value)
            return [row]
        raise NotImplementedError(f"the SQL fake does not know: {statement}")

    def _variable(self, name: str) -> str:
        server = self.server
        if name == "gtid_executed":
            return render_gtids(server.datadir.gtids)
        if name == "gtid_purged":
            return render_gtids(server.datadir.purged)
        if name == "version":
            return server.version
        if name not in server.globals:
            raise MySQLError(1193, "HY000", f"Unknown system variable '{name}'")
        return server.globals[name]

    def _set(self, scope: str, name: str, raw: str) -> None:
        server = self.server
        if name in READ_ONLY_VARIABLES or name in ("gtid_executed",):
            raise MySQLError(1238, "HY000", f"Variable '{name}' is a read only variable")
        if name not in DEFAULTS:
            raise MySQLError(1193, "HY000", f"Unknown system variable '{name}'")
        value = _normalise(name, raw)
        if scope == "SESSION":
            if name != "lock_wait_timeout":
                raise MySQLError(
                    1229, "HY000", f"Variable '{name}' is a GLOBAL variable and should be set with SET GLOBAL"
                )
            return
        if name == "lock_wait_timeout":
            server.globals[name] = value
            return
        if name == "gtid_mode":
            now, want = GTID_MODE_STEPS.index(server.globals["gtid_mode"]), GTID_MODE_STEPS.index(value)
            if abs(now - want) > 1:
                raise MySQLError(
                    1788,
                    "HY000",
                    "The value of @@GLOBAL.GTID_MODE can only be changed one step at a time: "
                    "OFF <-> OFF_PERMISSIVE <-> ON_PERMISSIVE <-> ON.",
                )
        if self.pending is not None and name in ("read_only", "super_read_only"):
            raise MySQLError(
                1192,
                "HY000",
                "Can't execute the given command because you have active locked tables or an active transaction",
            )
        changed = {name: value}
        if name == "super_read_only" and value == "1":
            changed["read_only"] = "1"
        if name == "read_only" and value == "0":
            changed["super_read_only"] = "0"
        server.globals.update(changed)
        if scope == "PERSIST":
            # Only the variable named is persisted; the one it drags along changes at runtime only.
            server.datadir.persisted[name] = value
