"""Every pinned version of the local stack, in one place.

Binaries are cached by these strings, so changing one here is all it takes to rebuild.
"""

from typing import Final

# Kubernetes 1.36's go.mod says ``go 1.26``: native to the toolchain we have.
KUBERNETES_VERSION: Final = "v1.36.3"
# Kubernetes 1.36 runs on etcd 3.6; the newest 3.6 patch the proxy serves.
ETCD_VERSION: Final = "v3.6.16"
KWOK_VERSION: Final = "v0.8.0"
HELM_VERSION: Final = "v3.22.0"
# org.apache.kafka:kafka_2.13 from Maven Central: the newest release; its jars are Java 17 class
# files, the JDK we have.
KAFKA_VERSION: Final = "4.4.0"
# Kafka's poms name slf4j-api 1.7 but no logging backend (the distribution adds one): this is the
# log4j2 binding for slf4j 1.x, at the log4j version Kafka 4.x's tools already pull in.
LOG4J_VERSION: Final = "2.24.3"
# Pinned so a build does not depend on whatever "latest" Maven resolves the plugin prefix to.
MAVEN_DEPENDENCY_PLUGIN_VERSION: Final = "3.8.1"
# The PostgreSQL server is not built: it is the machine's, looked up by this major version.
POSTGRES_MAJOR: Final = "15"
# The stand-in for ``python:3.11-slim`` that `scripts/image` builds the Dockerfile on (no registry
# is reachable): Debian's own Python 3.11 from this suite, made with mmdebstrap. Bump the revision
# after changing how the base is made (devstack/image.py) so the cached one is rebuilt.
BASE_IMAGE_SUITE: Final = "bookworm"
BASE_IMAGE_VERSION: Final = f"{BASE_IMAGE_SUITE}-py3.11-r3"

# KubeVela's controller (vela-core), built only for bench/converge.py's peer comparison, not for the
# stack: the newest version the Go module proxy serves here (v1.10.x is refused).
KUBEVELA_VERSION: Final = "v1.9.13"
