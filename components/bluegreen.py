"""A blue/green Percona Server: two colours with their own volumes, one Service that picks the live one.

Each colour is a StatefulSet of one Percona Server pod on its own PersistentVolumeClaim. A
StatefulSet rather than a Deployment: it guarantees at most one pod per identity, so two mysqld
processes never open the same InnoDB files (a Deployment may start a replacement pod while the
old one is still terminating), and it gives the pod a stable name (`percona-blue-0`) that the
upgrade workflow execs into. The PVC is a separate resource, not a volumeClaimTemplate, so that
Pulumi owns it: it can be restored from a VolumeSnapshot and it is retained on delete.

A colour may be restored from a VolumeSnapshot of another colour's PVC. The new colour cannot
start before the snapshot is ready: its PVC has `dataSource: VolumeSnapshot`, and the CSI
external-provisioner refuses to provision from a snapshot whose status.readyToUse is not true
(it retries until it is). Until then the PVC stays Pending, so the pod stays Pending, and the
StatefulSet's own await keeps `pulumi up` waiting. The upgrade workflow also waits for
readyToUse before it adds the colour, so its progress is visible.

The Service `percona` selects the live colour (`app: <active>`); nothing else depends on which
colour is live, so switching (and rolling back) changes only that selector. Data is never
deleted by Pulumi: the namespace, the credentials Secret, every PVC and every VolumeSnapshot are
retain_on_delete, the StorageClass retains volumes and the VolumeSnapshotClass retains snapshots.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import network
from components.kube import MANAGED_BY, child_opts, resources, restricted_security_context
from components.kube import namespace as kube_namespace
from settings.database import MYSQLD_OPTIONS, SERVER_IDS, Colour, DatabaseSettings

PORT = 3306
#: The uid/gid the percona/percona-server images run mysqld as (user `mysql`).
MYSQL_UID = 1001
#: mysqld's data directory: a subdirectory of the volume, so a filesystem's lost+found at the
#: volume root never sits inside it (mysqld --initialize refuses a non-empty directory).
DATA_MOUNT = "/var/lib/mysql"
DATADIR = f"{DATA_MOUNT}/data"
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"

#: Rows the load generator copies per round (every ~2 s), instead of doubling the table.
LOADGEN_ROWS_PER_ROUND = 1000

ROOT_PASSWORD_KEY = "root-password"
APP_PASSWORD_KEY = "app-password"
#: mysql client option files ([client] user and password) in the credentials Secret, mounted in
#: each colour at CLIENT_DIR: the password is never on a command line or in MYSQL_PWD.
ROOT_CLIENT_KEY = "client-root.cnf"
APP_CLIENT_KEY = "client-app.cnf"
CLIENT_DIR = "/etc/scaleplane/client"
#: The Percona image reads /etc/my.cnf, which includes /etc/my.cnf.d: the program's options go there.
OPTION_FILE = "/etc/my.cnf.d/scaleplane.cnf"
#: On the volume, beside the datadir: the claim whose server_uuid the datadir's auto.cnf is.
UUID_MARKER = f"{DATA_MOUNT}/.scaleplane-server-uuid-of"


def mysqld_option_file(colour: str) -> str:
    """The [mysqld] option file of one colour: the shared options and its own server_id."""
    lines = ["[mysqld]", f"server_id = {SERVER_IDS[colour]}"]
    lines += [f"{name} = {value}" for name, value in MYSQLD_OPTIONS.items()]
    return "\n".join(lines) + "\n"


def fresh_uuid_script() -> str:
    """The init container of a restored colour: remove the source's auto.cnf, once per claim.

    A volume restored from a snapshot carries the source server's auto.cnf, so mysqld would start
    with the source's server_uuid and write its GTIDs under the source's name. Removing it makes
    mysqld generate a server_uuid of its own. The marker (on the volume, beside the datadir)
    records for which claim that was done, so a restart keeps the uuid, and a claim restored from
    a snapshot of this one gets a new one again.
    """
    return "\n".join(
        [
            "set -eu",
            f'if [ "$(cat {UUID_MARKER} 2>/dev/null || true)" != "$CLAIM" ]; then',
            f"  rm -f {DATADIR}/auto.cnf",
            f'  printf "%s\\n" "$CLAIM" > {UUID_MARKER}',
            '  echo "removed the restored auto.cnf: mysqld generates a server_uuid for $CLAIM"',
            "fi",
        ]
    )


@dataclass(frozen=True)
class BlueGreenDatabaseArgs:
    settings: DatabaseSettings
    #: A StorageClass whose CSI driver supports snapshots (components.storage.SnapshotStorage).
    storage_class_name: pulumi.Input[str]
    #: The VolumeSnapshotClass snapshots are taken with (same CSI driver, deletionPolicy Retain).
    snapshot_class_name: pulumi.Input[str]


def colour_selector(database: str, colour: str) -> dict[str, str]:
    """The labels that pick one colour's pods: the playbook's `app: <colour>`, scoped to this database."""
    return {"app": colour, "app.kubernetes.io/part-of": database}


class BlueGreenDatabase(pulumi.ComponentResource):
    """Percona Server in blue/green colours, the `percona` Service, and optionally a load generator."""

    #: In-cluster DNS name of the `percona` Service (the live colour).
    host: pulumi.Output[str]
    port: int
    #: The live colour.
    active: str
    #: The Secret holding root-password and app-password.
    credentials_secret_name: pulumi.Output[str]
    #: PVC name of each running colour.
    claims: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: BlueGreenDatabaseArgs,
        provider: k8s.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        db = args.settings
        super().__init__("scaleplane:database:BlueGreenDatabase", name, None, opts)
        self._db = db
        self._provider = provider
        self.active = db.active
        self.port = PORT

        self.namespace = kube_namespace(
            f"{name}-namespace",
            db.namespace,
            self,
            provider,
            pod_security="restricted",
            holds_volumes=True,
        )
        namespace = self.namespace.metadata.apply(lambda m: m["name"])

        root_password = random.RandomPassword(
            f"{name}-root-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        app_password = random.RandomPassword(
            f"{name}-app-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        # One Secret for both colours: a restored colour carries the users of the colour it came from.
        # Retained with the volumes: without it their data cannot be logged into.
        self.credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": f"{db.name}-credentials", "namespace": namespace, "labels": self._labels()},
            type="Opaque",
            string_data={
                ROOT_PASSWORD_KEY: pulumi.Output.secret(root_password.result),
                APP_PASSWORD_KEY: pulumi.Output.secret(app_password.result),
                ROOT_CLIENT_KEY: pulumi.Output.secret(
                    pulumi.Output.concat("[client]\nuser=root\npassword=", root_password.result, "\n")
                ),
                APP_CLIENT_KEY: pulumi.Output.secret(
                    pulumi.Output.concat("[client]\nuser=", db.app_user, "\npassword=", app_password.result, "\n")
                ),
            },
            opts=child_opts(self, provider, retain_on_delete=True),
        )
        self.credentials_secret_name = self.credentials.metadata.apply(lambda m: m["name"])

        self._args = args
        self._namespace_name = namespace
        self._pvcs: dict[str, k8s.core.v1.PersistentVolumeClaim] = {}
        self.snapshots: dict[str, k8s.apiextensions.CustomResource] = {}
        self.statefulsets: dict[str, k8s.apps.v1.StatefulSet] = {}
        for snapshot in sorted(db.snapshots):
            self._snapshot(name, snapshot)
        for colour in db.serving:
            self._workload(name, colour)
        self.claims = {c: pvc.metadata.apply(lambda m: m["name"]) for c, pvc in self._pvcs.items()}

        # The one resource that names the live colour.
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": db.name, "namespace": namespace, "labels": self._labels()},
            spec={
                "type": "ClusterIP",
                "selector": colour_selector(db.name, db.active),
                "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql", "protocol": "TCP"}],
            },
            opts=child_opts(self, provider),
        )
        self.host = pulumi.Output.concat(
            self.service.metadata.apply(lambda m: m["name"]), ".", namespace, ".svc.cluster.local"
        )

        self.network_policies = self._network_policies(name, namespace)

        self.load_generator: Optional[k8s.batch.v1.Job] = None
        if db.load_generator.enabled:
            self.load_generator = self._load_generator(name, namespace)

        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "active": self.active,
                "credentialsSecretName": self.credentials_secret_name,
                "claims": self.claims,
            }
        )

    def _labels(self, colour: Optional[str] = None) -> dict[str, str]:
        labels = {**MANAGED_BY, "app.kubernetes.io/part-of": self._db.name}
        if colour:
            labels.update(colour_selector(self._db.name, colour))
            labels["app.kubernetes.io/name"] = "percona-server"
            labels["app.kubernetes.io/instance"] = f"{self._db.name}-{colour}"
        return labels

    def _snapshot(self, name: str, snapshot: str) -> k8s.apiextensions.CustomResource:
        """A VolumeSnapshot, created once; after its source colour's StatefulSet when that colour runs.

        After the StatefulSet, not just the PVC: a WaitForFirstConsumer PVC is bound only once its
        pod is scheduled, and a snapshot taken before mysqld has initialised the volume would
        restore as a half-written data directory (a stack deployed afresh from a config that
        already lists a snapshot and its restored colour).
        """
        if snapshot in self.snapshots:
            return self.snapshots[snapshot]
        db = self._db
        source = db.snapshots[snapshot].source
        # A retired colour's PVC is no longer in the stack: the snapshot then only names it.
        source_colour = next((c for c in db.serving if db.claim(c) == source), None)
        depends = [self._workload(name, source_colour)] if source_colour else []
        self.snapshots[snapshot] = k8s.apiextensions.CustomResource(
            f"{name}-snapshot-{snapshot}",
            api_version=f"{SNAPSHOT_GROUP}/v1",
            kind="VolumeSnapshot",
            metadata={"name": snapshot, "namespace": self._namespace_name, "labels": self._labels()},
            spec={
                "volumeSnapshotClassName": self._args.snapshot_class_name,
                "source": {"persistentVolumeClaimName": source},
            },
            opts=child_opts(self, self._provider, depends_on=depends, retain_on_delete=True),
        )
        return self.snapshots[snapshot]

    def _claim(self, name: str, colour: Colour) -> k8s.core.v1.PersistentVolumeClaim:
        """A colour's PVC, created once; after the snapshot it is restored from, if any."""
        if colour in self._pvcs:
            return self._pvcs[colour]
        db = self._db
        restore_from = db.colours[colour].restore_from
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": self._args.storage_class_name,
            "resources": {"requests": {"storage": db.storage_size}},
        }
        depends: list[pulumi.Resource] = []
        if restore_from:
            spec["dataSource"] = {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": restore_from}
            depends.append(self._snapshot(name, restore_from))
        self._pvcs[colour] = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-{colour}-data",
            metadata={"name": db.claim(colour), "namespace": self._namespace_name, "labels": self._labels(colour)},
            spec=spec,
            opts=child_opts(self, self._provider, depends_on=depends, retain_on_delete=True),
        )
        return self._pvcs[colour]

    def _workload(self, name: str, colour: Colour) -> k8s.apps.v1.StatefulSet:
        """A running colour: its PVC, its headless peers Service and its StatefulSet, created once."""
        if colour in self.statefulsets:
            return self.statefulsets[colour]
        db = self._db
        claim = self._claim(name, colour)
        peers = k8s.core.v1.Service(
            f"{name}-{colour}-peers",
            metadata={"name": f"{db.name}-{colour}", "namespace": self._namespace_name, "labels": self._labels(colour)},
            spec={
                "clusterIP": "None",
                "selector": colour_selector(db.name, colour),
                "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql", "protocol": "TCP"}],
            },
            opts=child_opts(self, self._provider),
        )
        options = k8s.core.v1.ConfigMap(
            f"{name}-{colour}-mysqld",
            metadata={
                "name": f"{db.name}-{colour}-mysqld",
                "namespace": self._namespace_name,
                "labels": self._labels(colour),
            },
            data={"scaleplane.cnf": mysqld_option_file(colour)},
            opts=child_opts(self, self._provider),
        )
        self.statefulsets[colour] = self._statefulset(name, colour, self._namespace_name, claim, peers, options)
        return self.statefulsets[colour]

    def _statefulset(
        self,
        name: str,
        colour: Colour,
        namespace: pulumi.Output[str],
        claim: k8s.core.v1.PersistentVolumeClaim,
        peers: k8s.core.v1.Service,
        options: k8s.core.v1.ConfigMap,
    ) -> k8s.apps.v1.StatefulSet:
        db = self._db
        secret = self.credentials_secret_name

        def from_secret(key: str) -> dict[str, Any]:
            return {"secretKeyRef": {"name": secret, "key": key}}

        alive = ["mysqladmin", "ping", "--host=127.0.0.1", f"--port={PORT}", "--silent"]
        # A real query as the application user: ready means it can log in and read. The password
        # comes from the mounted option file (--defaults-extra-file must be the first option).
        query = [
            "mysql",
            f"--defaults-extra-file={CLIENT_DIR}/{APP_CLIENT_KEY}",
            "--host=127.0.0.1",
            f"--port={PORT}",
            "--batch",
            "--skip-column-names",
            "--execute=SELECT 1",
            db.app_database,
        ]
        container = {
            "name": "mysql",
            "image": db.colours[colour].image,
            "args": ["mysqld", f"--datadir={DATADIR}"],
            "ports": [{"name": "mysql", "containerPort": PORT, "protocol": "TCP"}],
            "env": [
                {"name": "MYSQL_ROOT_PASSWORD", "valueFrom": from_secret(ROOT_PASSWORD_KEY)},
                {"name": "MYSQL_DATABASE", "value": db.app_database},
                {"name": "MYSQL_USER", "value": db.app_user},
                {"name": "MYSQL_PASSWORD", "valueFrom": from_secret(APP_PASSWORD_KEY)},
                {"name": "PERCONA_TELEMETRY_DISABLE", "value": "1"},
            ],
            "resources": resources(db.resources),
            # Crash recovery of a volume restored from a snapshot can take minutes: up to 15 here.
            "startupProbe": {
                "exec": {"command": alive},
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 90,
            },
            "livenessProbe": {
                "exec": {"command": alive},
                "periodSeconds": 20,
                "timeoutSeconds": 5,
                "failureThreshold": 3,
            },
            "readinessProbe": {
                "exec": {"command": query},
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 3,
            },
            "securityContext": restricted_security_context(MYSQL_UID, read_only_root=False),
            "volumeMounts": [
                {"name": "data", "mountPath": DATA_MOUNT},
                {"name": "mysqld-options", "mountPath": OPTION_FILE, "subPath": "scaleplane.cnf", "readOnly": True},
                {"name": "client", "mountPath": CLIENT_DIR, "readOnly": True},
            ],
        }
        claim_name = claim.metadata.apply(lambda m: m["name"])
        init_containers = []
        if db.colours[colour].restore_from:
            init_containers.append(
                {
                    "name": "fresh-server-uuid",
                    "image": db.colours[colour].image,
                    "command": ["sh", "-c", fresh_uuid_script()],
                    "env": [{"name": "CLAIM", "value": claim_name}],
                    "resources": resources(db.resources),
                    "securityContext": restricted_security_context(MYSQL_UID),
                    "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
                }
            )
        labels = self._labels(colour)
        # The option file is read at startup only: a change of it rolls the pod.
        annotations = {
            "scaleplane.dev/mysqld-options-sha256": hashlib.sha256(mysqld_option_file(colour).encode()).hexdigest()
        }
        return k8s.apps.v1.StatefulSet(
            f"{name}-{colour}",
            metadata={"name": f"{db.name}-{colour}", "namespace": namespace, "labels": labels},
            spec={
                "replicas": 1,
                "serviceName": peers.metadata.apply(lambda m: m["name"]),
                "selector": {"matchLabels": colour_selector(db.name, colour)},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        # InnoDB needs time to flush and shut down cleanly.
                        "terminationGracePeriodSeconds": 120,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": MYSQL_UID,
                            "runAsGroup": MYSQL_UID,
                            "fsGroup": MYSQL_UID,
                            "fsGroupChangePolicy": "OnRootMismatch",
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "initContainers": init_containers,
                        "containers": [container],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}},
                            {
                                "name": "mysqld-options",
                                "configMap": {"name": options.metadata.apply(lambda m: m["name"])},
                            },
                            {
                                "name": "client",
                                "secret": {
                                    "secretName": secret,
                                    "defaultMode": 0o440,
                                    "items": [
                                        {"key": ROOT_CLIENT_KEY, "path": ROOT_CLIENT_KEY},
                                        {"key": APP_CLIENT_KEY, "path": APP_CLIENT_KEY},
                                    ],
                                },
                            },
                        ],
                    },
                },
            },
            # A restored colour waits for its snapshot to become ready and for InnoDB recovery.
            opts=child_opts(self, self._provider, custom_timeouts=pulumi.CustomTimeouts(create="30m", update="20m")),
        )

    def _network_policies(self, name: str, namespace: pulumi.Output[str]) -> list[k8s.networking.v1.NetworkPolicy]:
        """Ingress denied by default; 3306 open to the load generator and between colours; egress
        only to DNS and 3306 of the colours.

        Nothing else in the stack talks to Percona: the load generator is its only client, and
        a rollback replays the new colour's binary log into the old colour from the new colour's
        pod (colour to colour). Probes are exec probes, which need no network.
        """
        db = self._db
        servers = {"app.kubernetes.io/part-of": db.name, "app.kubernetes.io/name": "percona-server"}
        loadgen = {"app": f"{db.name}-loadgen", "app.kubernetes.io/part-of": db.name}
        to_servers = [(network.Peer.pods(servers), [PORT])]
        common = {"parent": self, "provider": self._provider}
        return [
            network.deny_ingress(f"{name}-deny-ingress", namespace, self, self._provider),
            network.allow_ingress(
                f"{name}-clients-to-servers",
                namespace,
                policy_name=f"{db.name}-clients-to-servers",
                pods=servers,
                sources=[network.Peer.pods(loadgen), network.Peer.pods(servers)],
                ports=[PORT],
                **common,
            ),
            network.limit_egress(
                f"{name}-servers-egress",
                namespace,
                policy_name=f"{db.name}-servers-egress",
                pods=servers,
                destinations=to_servers,
                **common,
            ),
            network.limit_egress(
                f"{name}-loadgen-egress",
                namespace,
                policy_name=f"{db.name}-loadgen-egress",
                pods=loadgen,
                destinations=to_servers,
                **common,
            ),
        ]

    def _load_generator(self, name: str, namespace: pulumi.Output[str]) -> k8s.batch.v1.Job:
        db = self._db
        spec = db.load_generator
        target = f"{db.name}.{db.namespace}.svc.cluster.local"
        # MySQLLoadGenerate.sh logs in as root with the playbook's fixed password; run it as the
        # application user with the generated password instead: the option file client-app.cnf from
        # the Secret, mounted read-only (--defaults-extra-file right after `mysql`, as it must be). Its
        # loop doubles the Hardware table (INSERT ... SELECT * every 2 s): tens of millions of rows
        # within the 300 s, enough to fill the live colour's volume and stop mysqld. Each round
        # copies at most LOADGEN_ROWS_PER_ROUND rows instead. A script that does not read as
        # expected stops the Job rather than run unmodified.
        script = "\n".join(
            [
                "set -e",
                'sed -e "s|-uroot -pk8sDem0|--defaults-extra-file=$CLIENT_OPTIONS|g" '
                f'-e "s/FROM Hardware;/FROM Hardware LIMIT {LOADGEN_ROWS_PER_ROUND};/g" '
                "MySQLLoadGenerate.sh > /tmp/MySQLLoadGenerate.sh",
                # (`! grep` would not stop a `set -e` script: bash ignores a negated status.)
                "if grep -q k8sDem0 /tmp/MySQLLoadGenerate.sh; then",
                '  echo "MySQLLoadGenerate.sh still logs in with its fixed password: not run" >&2; exit 1',
                "fi",
                f'grep -q "FROM Hardware LIMIT {LOADGEN_ROWS_PER_ROUND};" /tmp/MySQLLoadGenerate.sh',
                "set +e",
                f"timelimit -t {spec.duration_seconds} sh /tmp/MySQLLoadGenerate.sh {target}",
                f'echo "MySQLLoadGenerate.sh stopped after its {spec.duration_seconds} s time limit"',
            ]
        )
        labels = {**MANAGED_BY, "app": f"{db.name}-loadgen", "app.kubernetes.io/part-of": db.name}
        return k8s.batch.v1.Job(
            f"{name}-loadgen",
            metadata={
                "name": f"{db.name}-loadgen",
                "namespace": namespace,
                "labels": labels,
                # It writes for minutes while the upgrade goes on: `pulumi up` must not wait for it.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                "backoffLimit": 1,
                "activeDeadlineSeconds": spec.duration_seconds + 60,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        # fsGroup: the mounted option file (0440) is readable by the generator's group.
                        "securityContext": {
                            "runAsNonRoot": True,
                            "fsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "sql-loadgen",
                                "image": spec.image,
                                "command": ["/bin/bash", "-c", script],
                                "env": [{"name": "CLIENT_OPTIONS", "value": f"{CLIENT_DIR}/{APP_CLIENT_KEY}"}],
                                "resources": resources(spec.resources),
                                "securityContext": restricted_security_context(65534),
                                "volumeMounts": [
                                    {"name": "tmp", "mountPath": "/tmp"},
                                    {"name": "client", "mountPath": CLIENT_DIR, "readOnly": True},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                            {
                                "name": "client",
                                "secret": {
                                    "secretName": self.credentials_secret_name,
                                    "defaultMode": 0o440,
                                    "items": [{"key": APP_CLIENT_KEY, "path": APP_CLIENT_KEY}],
                                },
                            },
                        ],
                    },
                },
            },
            # After every running colour is up, so its first writes find a server. Not after the
            # live colour alone: nothing but the Service may depend on which colour is live.
            opts=child_opts(self, self._provider, depends_on=list(self.statefulsets.values())),
        )
