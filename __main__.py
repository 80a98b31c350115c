"""scaleplane: wires validated stack settings to components and exports what users need."""

import pulumi

import settings
from components.balancer import balancer_for
from components.bluegreen import BlueGreenDatabase, BlueGreenDatabaseArgs
from components.cluster import cluster_for
from components.cluster.eks import EksCluster
from components.cluster.kops import KopsCluster
from components.loadtest import LoadTest, LoadTestArgs
from components.mesh import IstioMesh, LinkerdMesh, application_flows, mesh_for
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.minio import Minio, MinioArgs
from components.storage import SnapshotStorage, SnapshotStorageArgs
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

# --- Traffic (recipes 3-5): load balancer and service mesh ------------------------------------
# Application namespaces join the mesh through mesh.namespace_labels()/namespace_annotations();
# their pods wait for mesh.ready (the injector), exposed Services for balancer.ready.
balancer = balancer_for(f"{env}-balancer", config, provider, cluster.load_balancer_ready)
mesh = mesh_for(f"{env}-mesh", config, provider, balancer)
after_mesh = pulumi.ResourceOptions(depends_on=mesh.ready)

# --- Workloads --------------------------------------------------------------------------------
todo = TodoApp(
    f"{env}-todo",
    TodoAppArgs(
        settings=config.todo,
        environment=env,
        namespace_labels=mesh.namespace_labels(),
        namespace_annotations=mesh.namespace_annotations(),
        pod_security=mesh.app_pod_security,
        proxy=mesh.proxy_traffic(),
        balancer=balancer,
        meshed=config.mesh != "none",
    ),
    provider,
    after_mesh,
)

minio = None
if config.minio.enabled:
    minio = Minio(
        f"{env}-minio",
        MinioArgs(
            settings=config.minio,
            environment=env,
            namespace_labels=mesh.namespace_labels(),
            namespace_annotations=mesh.namespace_annotations(),
            pod_security=mesh.app_pod_security,
            proxy=mesh.proxy_traffic(),
        ),
        provider,
        after_mesh,
    )
    # Recipe 3: MinIO behind the stack's balancer; recipe 4: and behind Istio's gateway.
    minio_service = balancer.expose(
        "minio-service",
        namespace=minio.namespace,
        selector={"app": "minio"},
        port=9000,
        target_port=9000,
        parent=None,
        provider=provider,
        depends_on=[minio],
        exposure=config.minio.exposure,
    )
    if isinstance(mesh, IstioMesh):
        mesh.route_http("minio", namespace=config.minio.namespace, port=9000, depends_on=[minio])

# Zero trust inside the mesh: each application port admits exactly the clients it needs.
for flow in application_flows(config):
    mesh.authorize(flow, depends_on=[todo, *([minio] if minio is not None else [])])

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

# --- Recipe 7: snapshot-capable storage and the blue/green Percona database ------------------
# After the cluster: on EKS the cluster installs the EBS CSI driver and snapshot controller
# add-ons, which the storage classes need, hence depends_on.
database = None
if config.storage is not None:
    storage = SnapshotStorage(
        f"{env}-storage",
        SnapshotStorageArgs(settings=config.storage),
        provider,
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )
    if config.database is not None:
        database = BlueGreenDatabase(
            f"{env}-database",
            BlueGreenDatabaseArgs(
                settings=config.database,
                storage_class_name=storage.storage_class_name,
                snapshot_class_name=storage.snapshot_class_name,
            ),
            provider,
        )

# --- Outputs ----------------------------------------------------------------------------------
pulumi.export("environment", env)
pulumi.export("clusterName", cluster.name)
if isinstance(cluster, (EksCluster, KopsCluster)):
    pulumi.export("kubeconfig", cluster.kubeconfig)  # a secret; `python -m deploy bluegreen` uses it
pulumi.export("balancer", config.balancer)
pulumi.export("mesh", config.mesh)
pulumi.export("todoUrl", todo.url)
pulumi.export("todoNamespace", todo.namespace)
if minio is not None:
    pulumi.export("minioNamespace", minio.namespace)
    pulumi.export("minioUrl", minio_service.url)
if isinstance(mesh, IstioMesh):
    pulumi.export("istioIngressHost", mesh.ingress_host)
    pulumi.export("istioIngressHttpPort", mesh.ingress_http_port)
    pulumi.export("istioIngressHttpsPort", mesh.ingress_https_port)
if isinstance(mesh, LinkerdMesh):
    pulumi.export("linkerdDashboardUrl", mesh.dashboard_url)
    pulumi.export("linkerdDashboardUser", mesh.dashboard_user)
    pulumi.export("linkerdDashboardPassword", mesh.dashboard_password)
    if mesh.emojivoto_url is not None:
        pulumi.export("emojivotoUrl", mesh.emojivoto_url)
if database is not None:
    pulumi.export("databaseHost", database.host)
    pulumi.export("databasePort", database.port)
    pulumi.export("databaseActiveColour", database.active)
    pulumi.export("databaseCredentialsSecret", database.credentials_secret_name)
