"""The model bundle format: the one contract between ``model_export`` and ``service``.

Dependency-free on purpose (standard library only), so the export side can import it without
pulling in the server and the server can import it without torch.
"""

from service.bundle.manifest import (
    SCHEMA_VERSION,
    Architecture,
    BundleError,
    GraphSpec,
    Manifest,
    Preprocessing,
    TensorSpec,
    file_sha256,
)

__all__ = [
    "SCHEMA_VERSION",
    "Architecture",
    "BundleError",
    "GraphSpec",
    "Manifest",
    "Preprocessing",
    "TensorSpec",
    "file_sha256",
]
