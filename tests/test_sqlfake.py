"""tests/sqlfake.py holds to MySQL 8.0's documented semantics where the workflow relies on them."""

from __future__ import annotations

import pytest
import sqlfake
from sqlfake import DataDir, MySQLError, Server

GTID_OPTIONS = {"gtid_mode": "ON", "enforce_gtid_consistency": "ON", "server_id": "1001"}


def server(**options: str) -> Server:
    return Server(DataDir(), {**GTID_OPTIONS, **options})


def test_super_read_only_refuses_even_root_and_read_only_alone_does_not() -> None:
    db = server()
    db.run("SET GLOBAL read_only = ON")
    db.connect("root").write("t.a", 1, 1)  # SUPER writes under read_only
    with pytest.raises(MySQLError, match=r"ERROR 1290 \(HY000\).*--read-only"):
        db.connect("app").write("t.a", 2, 1)
    db.run("SET GLOBAL super_read_only = ON")
    with pytest.raises(MySQLError, match="--super-read-only"):
        db.connect("root").write("t.a", 3, 1)


def test_super_read_only_drags_read_only_on_and_read_only_off_drags_it_off() -> None:
    db = server()
    db.run("SET GLOBAL super_read_only = ON")
    assert db.run("SELECT @@global.read_only, @@global.super_read_only") == [["1", "1"]]
    db.run("SET GLOBAL read_only = OFF")
    assert db.run("SELECT @@global.read_only, @@global.super_read_only") == [["0", "0"]]


def test_an_open_transaction_fails_at_commit_once_frozen() -> None:
    db = server()
    session = db.connect("app")
    session.begin()
    session.write("t.a", 1, 1)
    db.run("SET PERSIST super_read_only = ON")
    with pytest.raises(MySQLError, match="1290"):
        session.commit()
    assert db.rows() == {}


def test_a_restart_forgets_set_global_and_keeps_set_persist() -> None:
    db = server()
    db.run("SET GLOBAL super_read_only = ON")
    db.restart()
    assert db.run("SELECT @@global.super_read_only") == [["0"]]
    db.run("SET PERSIST super_read_only = ON")
    db.restart()
    assert db.run("SELECT @@global.super_read_only, @@global.read_only") == [["1", "1"]]
    assert db.run(sqlfake.PERSISTED) == [["super_read_only", "ON"]]


def test_a_snapshot_carries_auto_cnf_and_mysqld_auto_cnf_and_a_missing_auto_cnf_means_a_new_uuid() -> None:
    db = server()
    db.run("SET PERSIST super_read_only = ON")
    copy = db.datadir.snapshot()
    same = Server(copy, GTID_OPTIONS)
    assert same.globals["server_uuid"] == db.globals["server_uuid"] and same.globals["super_read_only"] == "1"
    fresh = db.datadir.snapshot()
    fresh.auto_cnf = None
    assert Server(fresh, GTID_OPTIONS).globals["server_uuid"] != db.globals["server_uuid"]


def test_commits_get_gtids_only_with_gtid_mode_on_and_gtid_executed_prints_like_mysql() -> None:
    anonymous = Server(DataDir(), {})
    anonymous.connect("app").write("t.a", 1, 1)
    assert anonymous.run("SELECT @@global.gtid_executed") == [[""]]
    db = server()
    other = server()
    db.connect("app").write("t.a", 1, 1)
    db.connect("app").write("t.a", 2, 1)
    db.replay(other.datadir, set())  # nothing asked: nothing applied
    other.connect("app").write("t.b", 1, 1)
    db.replay(other.datadir, other.gtid_executed)
    text = db.run("SELECT @@global.gtid_executed")[0][0]
    assert ",\n" in text and text.startswith(db.globals["server_uuid"] + ":1-2")
    assert db.replay(other.datadir, other.gtid_executed) == 0, "an executed GTID is skipped"


def test_what_mysql_refuses_is_refused() -> None:
    db = server()
    with pytest.raises(MySQLError, match="1238"):
        db.run("SET GLOBAL server_uuid = 'x'")
    with pytest.raises(MySQLError, match="1788"):
        Server(DataDir(), {}).run("SET PERSIST gtid_mode = ON")
    with pytest.raises(MySQLError, match="1784"):
        Server(DataDir(), {"gtid_mode": "ON"})
    with pytest.raises(MySQLError, match="1094"):
        db.run("KILL CONNECTION 4242")
    with pytest.raises(MySQLError, match="1290"):
        frozen = server()
        frozen.run("SET PERSIST super_read_only = ON")
        other = server()
        other.connect("app").write("t.a", 1, 1)
        frozen.replay(other.datadir, other.gtid_executed)  # a replay into a frozen server fails


def test_a_statement_the_model_does_not_know_is_never_a_silent_success() -> None:
    with pytest.raises(NotImplementedError):
        server().run("SELECT * FROM mysql.user")
