"""References that tests compare the real implementations against.

The plain NumPy rollout (full float64 matrix products, a different algorithm from the vector chain
inside the graphs) lives in the package, where export also uses it; its own correctness is pinned
by closed-form cases in tests/model_export/export/test_export_graphs.py.
"""

from model_export.export.reference import numpy_rollout

__all__ = ["numpy_rollout"]
