"""scaleplane: wires validated stack settings to components and exports what users need."""

import pulumi

import settings
from components.cluster import cluster_for

config = settings.load()
cluster = cluster_for(f"{config.environment}-cluster", config)

pulumi.export("environment", config.environment)
pulumi.export("clusterName", cluster.name)
