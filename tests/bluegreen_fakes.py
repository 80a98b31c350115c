"""The blue/green workflow's world, faked: a cluster of MySQL models (tests/sqlfake.py) that follows
what the stack deploys, the kubectl probe on it, and a FakeStack whose previews and ups run the real
components under mocks.

The cluster reads the rendered objects, not the settings: a colour's mysqld starts with the options
of its rendered ConfigMap, a restored colour drops the copied auto.cnf only when its StatefulSet has
the init container, and the percona Service selects what the deployed Service's selector says.
Each move of the Service is checked as it happens: the colour it moves to must hold every
transaction a client was told committed, and the colour it leaves must be frozen.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import sqlfake
from bluegreen_helpers import raw_config, run_components
from fakestack import FakeStack, Step
from pulumi import automation as auto

from deploy import mockrun
from deploy.bluegreen import ProbeError, parse_batch
from deploy.gtid import GtidSet

ZFS = {"driver": "zfs-localpv", "zfsLocalPv": {"poolName": "zfspv-pool"}}
VERSIONS = {"8.0.43-34": "8.0.43-34", "8.0.46-37.1": "8.0.46-37.1"}


@functools.lru_cache(maxsize=256)
def _rendered(raw_json: str) -> tuple[mockrun.PlannedResource, ...]:
    return tuple(r for r in run_components(json.loads(raw_json)).resources if r.custom)


def rendered(raw: dict[str, str]) -> dict[str, mockrun.PlannedResource]:
    """The components' resources for a stack config, by name (cached: the fault loops reuse configs)."""
    return {r.name: r for r in _rendered(json.dumps(raw, sort_keys=True))}


def expand(gtids: GtidSet) -> set[sqlfake.Gtid]:
    return {(uuid, n) for uuid, spans in gtids.sources.items() for a, b in spans for n in range(a, b + 1)}


@dataclass
class FakeCluster:
    volumes: dict[str, sqlfake.DataDir] = field(default_factory=dict)
    snapshots: dict[str, sqlfake.DataDir] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    servers: dict[str, sqlfake.Server] = field(default_factory=dict)
    #: (claim, image, options) each running server was started with.
    started: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    service: Optional[str] = None
    snapshot_delay: int = 1
    #: Every GTID a client was told is committed.
    committed: set[sqlfake.Gtid] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    client: Optional[sqlfake.Session] = None
    writes: int = 0
    #: A rollback with --abandon-writes may leave committed writes behind, on a colour that keeps them.
    abandon_ok: bool = False

    def deploy(self, resources: dict[str, mockrun.PlannedResource]) -> None:
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for resource in resources.values():
            by_kind.setdefault(resource.inputs.get("kind", ""), []).append(resource.inputs)
        for snapshot in by_kind.get("VolumeSnapshot", []):
            name = snapshot["metadata"]["name"]
            if name not in self.snapshots:
                source = self.volumes.get(snapshot["spec"]["source"]["persistentVolumeClaimName"])
                # A crash-consistent copy of the volume as it is now (mysqld-auto.cnf and auto.cnf too).
                self.snapshots[name] = source.snapshot() if source else sqlfake.DataDir()
                self.pending[name] = self.snapshot_delay
        for claim in by_kind.get("PersistentVolumeClaim", []):
            name = claim["metadata"]["name"]
            if name not in self.volumes:
                source = (claim["spec"].get("dataSource") or {}).get("name")
                self.volumes[name] = self.snapshots[source].snapshot() if source else sqlfake.DataDir()
        options = {c["metadata"]["name"]: c["data"]["scaleplane.cnf"] for c in by_kind.get("ConfigMap", [])}
        running = set()
        for statefulset in by_kind.get("StatefulSet", []):
            colour = statefulset["metadata"]["labels"]["app"]
            running.add(colour)
            pod = statefulset["spec"]["template"]["spec"]
            (claim,) = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
            (config_map,) = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
            image = pod["containers"][0]["image"]
            wanted = (claim, image, options[config_map])
            if self.started.get(colour) == wanted and self.servers[colour].running:
                continue
            if colour in self.servers:
                self.servers[colour].stop()
            datadir = self.volumes[claim]
            for init in pod.get("initContainers", []):
                if init["name"] == "fresh-server-uuid" and datadir.files.get("uuid-marker") != claim:
                    datadir.auto_cnf = None  # rm auto.cnf: mysqld generates a server_uuid
                    datadir.files["uuid-marker"] = claim
            self.servers[colour] = sqlfake.Server(
                datadir, sqlfake.parse_options(options[config_map]), image.rpartition(":")[2]
            )
            self.started[colour] = wanted
        for colour in list(self.servers):
            if colour not in running:
                self.servers.pop(colour).stop()
                self.started.pop(colour, None)
        services = [s for s in by_kind.get("Service", []) if "clusterIP" not in s["spec"]]
        (service,) = services
        selected = service["spec"]["selector"]["app"]
        if self.service is not None and selected != self.service:
            self._check_move(self.service, selected)
        self.service = selected

    def _check_move(self, old: str, new: str) -> None:
        target = self.servers.get(new)
        if target is None:
            self.violations.append(f"the Service moved to {new}, which does not run")
            return
        lost = self.committed - target.gtid_executed
        if lost and self.abandon_ok:
            lost -= set().union(*(s.gtid_executed for s in self.servers.values()))
        if lost:
            self.violations.append(f"the Service moved to {new}, which lacks committed {sorted(lost)}")
        source = self.servers.get(old)
        if source is not None and source.globals["super_read_only"] != "1":
            self.violations.append(f"the Service moved from {old} while it could still take writes")

    # -- clients and operators --------------------------------------------------------------------

    def live(self) -> sqlfake.Server:
        assert self.service is not None
        return self.servers[self.service]

    def write(self, rows: int = 1, table: str = "Inventory.Hardware", update: bool = False) -> int:
        """A pooled client through the Service: its connection outlives a switch until it is killed.

        Returns how many writes committed (a frozen colour refuses them; that is no loss).
        """
        done = 0
        for _ in range(rows):
            self.writes += 1
            for _attempt in range(2):
                if self.client is None or self.client.killed:
                    if self.service not in self.servers or not self.live().running:
                        return done
                    self.client = self.live().connect("app")
                try:
                    self.client.begin()
                    row = 1 if update else self.writes
                    self.client.write(table, row, self.writes)
                    gtid = self.client.commit()
                except sqlfake.MySQLError as error:
                    if error.code == 2013:
                        continue  # reconnect through the Service
                    break
                if gtid is not None:
                    self.committed.add(gtid)
                done += 1
                break
        return done

    def restart(self, colour: Optional[str] = None) -> None:
        for name, server in self.servers.items():
            if colour in (None, name):
                server.restart()

    def holds_every_commit(self) -> bool:
        return self.committed <= self.live().gtid_executed


class FakeProbe:
    """kubectl on the fake cluster: SQL answers come back as `mysql --batch --raw` text."""

    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.queries: list[tuple[str, str]] = []

    @staticmethod
    def colour(pod: str) -> str:
        return pod.removeprefix("percona-").removesuffix("-0")

    def snapshot_ready(self, namespace: str, name: str) -> bool:
        if name not in self.cluster.snapshots:
            return False
        self.cluster.pending[name] -= 1
        return self.cluster.pending[name] < 0

    def pod_ready(self, namespace: str, pod: str) -> bool:
        server = self.cluster.servers.get(self.colour(pod))
        return server is not None and server.running

    def query(self, namespace: str, pod: str, sql: str) -> list[list[str]]:
        colour = self.colour(pod)
        self.queries.append((colour, sql))
        try:
            rows = self.cluster.servers[colour].run(sql)
        except sqlfake.MySQLError as error:
            raise ProbeError(f"kubectl -n {namespace} exec {pod} failed: {error}") from error
        return parse_batch("".join("\t".join(row) + "\n" for row in rows))

    def replay(self, namespace: str, source_pod: str, target_host: str, gtids: str) -> None:
        source = self.cluster.servers[self.colour(source_pod)]
        target = self.cluster.servers[target_host.split(".")[0].removeprefix("percona-").removesuffix("-0")]
        self.queries.append((self.colour(source_pod), f"mysqlbinlog --include-gtids={gtids} | mysql"))
        try:
            target.replay(source.datadir, expand(GtidSet.parse(gtids)))
        except sqlfake.MySQLError as error:
            raise ProbeError(f"kubectl -n {namespace} exec {source_pod} failed: {error}") from error


def _step(name: str, urn: str, op: str) -> Step:
    qualified = urn.split("::")[2]
    parent, _, type_ = qualified.rpartition("$")
    return Step(op, type_, name, parent=parent)


class ComponentStack(FakeStack):
    """A FakeStack whose plan is the difference between the deployed and the configured components."""

    def __init__(self, database: dict[str, Any], cluster: FakeCluster, name: str = "local"):
        super().__init__(name)
        for key, value in raw_config(database, ZFS).items():
            self.config[key] = auto.ConfigValue(value=value)
        self.cluster = cluster
        self.deployed = rendered(self.raw())
        self.cluster.deploy(self.deployed)
        self.resources = [_step(n, r.urn, "same") for n, r in self.deployed.items()]
        #: Called before every preview/up: a test's hook (e.g. a client writing meanwhile).
        self.before: Optional[Callable[[str], None]] = None

    def raw(self) -> dict[str, str]:
        return {key: value.value for key, value in self.config.items()}

    def section(self) -> dict[str, Any]:
        return json.loads(self.config["scaleplane:database"].value)

    def _diff(self) -> list[Step]:
        wanted = rendered(self.raw())
        steps = []
        for name, resource in wanted.items():
            old = self.deployed.get(name)
            op = "create" if old is None else ("update" if old.inputs != resource.inputs else "same")
            steps.append(_step(name, resource.urn, op))
        steps += [_step(n, r.urn, "delete") for n, r in self.deployed.items() if n not in wanted]
        return steps

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        if self.before:
            self.before("preview")
        self.plan = self._diff()
        return super().preview(**kwargs)

    def up(self, **kwargs: Any) -> auto.UpResult:
        if self.before:
            self.before("up")
        self.plan = self._diff()
        result = super().up(**kwargs)
        wanted = rendered(self.raw())
        targets = kwargs.get("target")
        if targets:
            chosen = {s.name for s in self.plan if s.urn(self.name) in targets}
            deployed = dict(self.deployed)
            for name in chosen:
                if name in wanted:
                    deployed[name] = wanted[name]
                else:
                    deployed.pop(name, None)
            self.deployed = deployed
        else:
            self.deployed = wanted
        self.cluster.deploy(self.deployed)
        return result

    def export_stack(self) -> auto.Deployment:
        resources = [
            {
                "urn": r.urn.replace("urn:pulumi:test::", f"urn:pulumi:{self.name}::"),
                "type": r.type,
                "outputs": r.inputs,
            }
            for r in self.deployed.values()
        ]
        return auto.Deployment(version=3, deployment={"manifest": {}, "resources": resources})
