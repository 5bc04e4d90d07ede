"""Re-use the broker fixtures of ../python/conftest.py (one implementation for both suites)."""

import importlib.util
import sys
from pathlib import Path

_PY = Path(__file__).resolve().parent.parent / "python"
if str(_PY) not in sys.path:
    sys.path.insert(0, str(_PY))

_spec = importlib.util.spec_from_file_location("spate_compat_broker", _PY / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
sys.modules["spate_compat_broker"] = _mod
_spec.loader.exec_module(_mod)

Broker = _mod.Broker
broker = _mod.broker
broker_factory = _mod.broker_factory
pytest_runtest_makereport = _mod.pytest_runtest_makereport
pytest_sessionfinish = _mod.pytest_sessionfinish
