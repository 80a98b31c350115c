"""The blue/green Percona database: its colours, their snapshots, and which colour is live.

`scaleplane:database` is the whole state of a blue/green upgrade, so the upgrade workflow
(`python -m deploy bluegreen`) is nothing but a sequence of edits to it, each applied with
`pulumi up`:

    active: blue                      # the colour the `percona` Service selects
    colours:
      blue:  {image: percona/percona-server:8.0.43-34}
      green: {image: percona/percona-server:8.0.46-37.1, restoreFrom: blue-20261126t1730}
    snapshots:
      blue-20261126t1730: {source: data-percona-blue}   # a VolumeSnapshot of blue's PVC

Every colour has its own PVC; a colour with `restoreFrom` gets a PVC restored from that
VolumeSnapshot. Retiring a colour (`retired: true`) removes its workload; its PVC and the
snapshots are retained in the cluster (never deleted by Pulumi).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Self

from pydantic import Field, model_validator

from settings.base import settings
from settings.workloads import ImageRef, Resources, StorageSize

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")]
#: Snapshot names become VolumeSnapshot names and part of PVC names: short DNS labels.
SnapshotName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,46}[a-z0-9])?$")]
MysqlName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]

#: The playbook's image; blue runs it until the first upgrade.
DEFAULT_IMAGE = "docker.io/percona/percona-server:8.0.43-34"

#: Each colour's own server_id: GTIDs and a replayed binary log tell the two servers apart.
SERVER_IDS: dict[str, int] = {"blue": 1001, "green": 1002}
#: The mysqld options every colour runs with (components.bluegreen writes them into a ConfigMap
#: mounted as an option file; the workflow refuses to run when the live colour does not have them
#: in effect). GTIDs prove that two colours hold the same transactions; sync_binlog=1 and
#: innodb_flush_log_at_trx_commit=1 make every commit durable in both the binary log and InnoDB.
MYSQLD_OPTIONS: dict[str, str] = {
    "gtid_mode": "ON",
    "enforce_gtid_consistency": "ON",
    "log_bin": "binlog",
    "binlog_format": "ROW",
    "sync_binlog": "1",
    "innodb_flush_log_at_trx_commit": "1",
}


def claim_name(database: str, colour: str, restore_from: Optional[str]) -> str:
    """The PVC name of a colour: fresh (`data-<db>-<colour>`) or restored from a snapshot.

    A restored colour's claim carries the snapshot's name, so a colour retired and later
    restored again gets a new claim and never meets the retained volume of its past self.
    """
    base = f"data-{database}-{colour}"
    return f"{base}-from-{restore_from}" if restore_from else base


@settings
class ColourSettings:
    """One colour: a Percona Server workload with its own PVC."""

    image: ImageRef = DEFAULT_IMAGE
    #: A snapshot in `snapshots` to restore this colour's PVC from; None: a fresh, empty volume.
    restore_from: Optional[SnapshotName] = None
    #: Retired: no workload and no PVC in the stack. The PVC is retained in the cluster (data kept);
    #: delete it by hand when you are sure. The live colour cannot be retired.
    retired: bool = False


@settings
class SnapshotSettings:
    """A VolumeSnapshot of one of this database's PVCs."""

    #: The PVC snapshotted: a claim of this database (`data-<db>-<colour>[-from-<snapshot>]`).
    source: Annotated[str, Field(min_length=1)]


@settings
class LoadGeneratorSettings:
    """The playbook's MySQL load generator: openebs/tests-mysql-client's MySQLLoadGenerate.sh.

    Run as the application user, and with each round bounded (components.bluegreen), so that it
    can run against the live colour without filling its volume.
    """

    enabled: bool = False
    #: openebs/tests-mysql-client publishes only a `latest` tag: pin it by digest
    #: (`docker buildx imagetools inspect docker.io/openebs/tests-mysql-client:latest`).
    image: Optional[ImageRef] = None
    #: How long the generator writes (timelimit -t); the Job is stopped 60 s after that.
    duration_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    resources: Resources = Resources(cpu_request="100m", memory_request="64Mi", memory_limit="128Mi")

    @model_validator(mode="after")
    def _image_when_enabled(self) -> Self:
        if self.enabled and self.image is None:
            raise ValueError(
                "loadGenerator.image is required when the load generator is enabled "
                "(openebs/tests-mysql-client has no version tags: pin it by digest, name@sha256:...)"
            )
        return self


@settings
class DatabaseSettings:
    """A blue/green Percona Server: colours, snapshots, the live colour, a load generator."""

    #: The live colour: the `percona` Service selects its pods (app: <colour>).
    active: Colour
    colours: Annotated[dict[Colour, ColourSettings], Field(min_length=1)]
    snapshots: dict[SnapshotName, SnapshotSettings] = Field(default_factory=dict)
    #: Service name and resource prefix (the playbook's Service is `percona`).
    name: DnsLabel = "percona"
    namespace: DnsLabel = "percona"
    storage_size: StorageSize = "10Gi"
    #: The application database and user (the load generator's MySQLLoadGenerate.sh uses Inventory).
    app_database: MysqlName = "Inventory"
    app_user: MysqlName = "app"
    resources: Resources = Resources(cpu_request="500m", memory_request="1Gi", memory_limit="2Gi")
    load_generator: LoadGeneratorSettings = LoadGeneratorSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.active not in self.colours:
            raise ValueError(
                f"active: colour '{self.active}' is not defined (colours: {', '.join(sorted(self.colours))})"
            )
        if self.colours[self.active].retired:
            raise ValueError(
                f"colours.{self.active}.retired: {self.active} is the live colour (active); "
                "switch to another colour before retiring it"
            )
        for colour, spec in sorted(self.colours.items()):
            if spec.restore_from is None:
                continue
            if spec.restore_from not in self.snapshots:
                known = ", ".join(sorted(self.snapshots)) or "none"
                raise ValueError(
                    f"colours.{colour}.restoreFrom: snapshot '{spec.restore_from}' is not defined "
                    f"in snapshots (defined: {known})"
                )
            if self.snapshots[spec.restore_from].source == self.claim(colour):
                raise ValueError(
                    f"colours.{colour}.restoreFrom: snapshot '{spec.restore_from}' was taken of "
                    f"{colour}'s own PVC; a volume cannot be restored from itself"
                )
        needs = {c: self._restored_from_colour(c) for c in self.serving}
        for colour, other in sorted(needs.items()):
            if other is not None and needs.get(other) == colour:
                raise ValueError(
                    f"colours.{colour}.restoreFrom: {colour} is restored from a snapshot of {other}'s PVC "
                    f"and {other} from a snapshot of {colour}'s: neither volume could ever be created"
                )
        known_claims = self.known_claims()
        for snapshot, spec in sorted(self.snapshots.items()):
            if spec.source not in known_claims:
                raise ValueError(
                    f"snapshots.{snapshot}.source: '{spec.source}' is not a PVC of this database "
                    f"(its PVCs are {', '.join(sorted(self.current_claims().values()))}"
                    ", or one restored from a snapshot listed here)"
                )
        return self

    def _restored_from_colour(self, colour: Colour) -> Optional[Colour]:
        """The running colour whose current PVC this colour's snapshot was taken of, if any."""
        restore_from = self.colours[colour].restore_from
        if restore_from is None or restore_from not in self.snapshots:
            return None
        source = self.snapshots[restore_from].source
        return next((c for c in self.serving if c != colour and self.claim(c) == source), None)

    def claim(self, colour: Colour) -> str:
        """The PVC name of a colour as currently configured."""
        return claim_name(self.name, colour, self.colours[colour].restore_from)

    def current_claims(self) -> dict[Colour, str]:
        return {colour: self.claim(colour) for colour in self.colours}

    def known_claims(self) -> set[str]:
        """Every PVC this database has or had: each colour fresh, or restored from a snapshot here."""
        claims = {claim_name(self.name, colour, None) for colour in COLOURS}
        claims |= {claim_name(self.name, colour, snap) for colour in COLOURS for snap in self.snapshots}
        return claims

    @property
    def serving(self) -> dict[Colour, ColourSettings]:
        """Colours that run (not retired), in a stable order."""
        return {c: self.colours[c] for c in COLOURS if c in self.colours and not self.colours[c].retired}
