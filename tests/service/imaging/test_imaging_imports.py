"""The imaging package stays light: Pillow and NumPy, never torch or model_export."""

from __future__ import annotations

import subprocess
import sys


def test_importing_imaging_pulls_in_neither_torch_nor_model_export() -> None:
    code = (
        "import sys, service.imaging; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model_export')); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
