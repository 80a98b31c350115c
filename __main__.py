"""scaleplane: wires validated stack settings to components and exports what users need."""

import pulumi

import settings
from components.cluster import cluster_for

config = settings.load()
cluster = cluster_for(f"{config.environment}-cluster", config)

pulumi.export("environment", config.environment)
pulumi.export("clusterName", cluster.name)

# --- Recipe 7: snapshot-capable storage and the blue/green Percona database ------------------
# After the cluster: on EKS the cluster installs the EBS CSI driver and snapshot controller
# add-ons, which the storage classes need, hence depends_on.
if config.storage is not None:
    from components.bluegreen import BlueGreenDatabase, BlueGreenDatabaseArgs
    from components.storage import SnapshotStorage, SnapshotStorageArgs

    storage = SnapshotStorage(
        f"{config.environment}-storage",
        SnapshotStorageArgs(settings=config.storage),
        cluster.provider,
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )
    if config.database is not None:
        database = BlueGreenDatabase(
            f"{config.environment}-database",
            BlueGreenDatabaseArgs(
                settings=config.database,
                storage_class_name=storage.storage_class_name,
                snapshot_class_name=storage.snapshot_class_name,
            ),
            cluster.provider,
        )
        pulumi.export("databaseHost", database.host)
        pulumi.export("databasePort", database.port)
        pulumi.export("databaseActiveColour", database.active)
        pulumi.export("databaseCredentialsSecret", database.credentials_secret_name)
