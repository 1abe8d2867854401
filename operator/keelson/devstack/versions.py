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
