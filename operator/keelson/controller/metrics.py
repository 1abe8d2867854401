"""The operator's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "keelson_reconcile_duration_seconds",
    "Time of one reconcile pass of one platform.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = Counter("keelson_reconcile_errors_total", "Reconcile passes that hit an error.")
OBJECTS_APPLIED = Counter("keelson_objects_applied_total", "Child objects written with server-side apply.", ["kind"])
OBJECTS_DELETED = Counter("keelson_objects_deleted_total", "Child objects pruned.", ["kind"])
KAFKA_ADMIN_WRITES = Counter(
    "keelson_kafka_admin_writes_total", "Create, alter and delete requests sent to Kafka's Admin API."
)
WRITE_LOOPS = Counter(
    "keelson_write_loops_total",
    "Objects the write-loop guard stopped writing (more than KEELSON_LOOP_MAX_WRITES writes in the window "
    "at one generation of their platform).",
    ["kind"],
)
AREA_PASSES = Counter(
    "keelson_area_passes_total",
    "Passes of an area's external work (databases, topics) that ran: their inputs changed or the resync was due.",
    ["area"],
)
AREA_PASSES_SKIPPED = Counter(
    "keelson_area_passes_skipped_total",
    "Reconciles that reused an area's last result because none of its inputs had changed.",
    ["area"],
)
# keelson_kafka_admin_requests_total and keelson_postgres_connections_total are defined where the
# I/O happens (keelson.kafka.admin, keelson.databases.server), a layer below the controller.
QUEUE_DEPTH = Gauge(
    "keelson_queue_depth", "Platforms waiting in the work queue for a worker (not those being reconciled)."
)
PLATFORMS = Gauge("keelson_platforms", "Platforms by readiness.", ["ready"])

_readiness: dict[tuple[str, str], bool] = {}


def set_platform_ready(namespace: str, name: str, ready: bool) -> None:
    _readiness[(namespace, name)] = ready
    _publish()


def forget_platform(namespace: str, name: str) -> None:
    _readiness.pop((namespace, name), None)
    _publish()


def _publish() -> None:
    ready = sum(_readiness.values())
    PLATFORMS.labels(ready="true").set(ready)
    PLATFORMS.labels(ready="false").set(len(_readiness) - ready)
