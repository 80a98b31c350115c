"""scaleplane: wires validated stack settings to components and exports what users need."""

import pulumi

import settings
from components.cluster import cluster_for
from components.loadtest import LoadTest, LoadTestArgs
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.minio import Minio, MinioArgs
from components.todo import TodoApp, TodoAppArgs

config = settings.load()
env = config.environment

# --- Cluster and its provider -----------------------------------------------------------------
cluster = cluster_for(f"{env}-cluster", config)
provider = cluster.provider

# --- Platform ---------------------------------------------------------------------------------
if config.metrics_server.enabled:
    MetricsServer(
        f"{env}-metrics-server",
        MetricsServerArgs(
            chart_version=config.metrics_server.chart_version,
            namespace=config.metrics_server.namespace,
            replicas=config.metrics_server.replicas,
            kubelet_insecure_tls=config.metrics_server.kubelet_insecure_tls,
        ),
        provider,
    )

# --- Workloads --------------------------------------------------------------------------------
todo = TodoApp(f"{env}-todo", TodoAppArgs(settings=config.todo, environment=env), provider)

minio = None
if config.minio.enabled:
    minio = Minio(f"{env}-minio", MinioArgs(settings=config.minio, environment=env), provider)

if config.load_test.enabled:
    LoadTest(
        f"{env}-load-test",
        LoadTestArgs(
            settings=config.load_test,
            target_url=pulumi.Output.format("http://{0}.{1}.svc.cluster.local/", todo.service_name, todo.namespace),
            namespace=todo.namespace,
        ),
        provider,
    )

# --- Outputs ----------------------------------------------------------------------------------
pulumi.export("environment", env)
pulumi.export("clusterName", cluster.name)
pulumi.export("todoUrl", todo.url)
pulumi.export("todoNamespace", todo.namespace)
if minio is not None:
    pulumi.export("minioNamespace", minio.namespace)
