import subprocess
import sys


def test_service_never_imports_torch_or_model_export():
    code = (
        "import sys, service.app, service.cli, service.engine, service.batcher; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'model_export')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
