"""Loads the test harness and each service's test support as pytest plugins.

They are ordinary modules, so tests import their helpers by name (`from harness
import ...`) without ever depending on which conftest.py pytest loaded first.
"""

pytest_plugins = [
    "harness",
    "rest_support",
    "rest_compat_support",
    "auth_support",
    "realtime_support",
    "redis_support",
    "security_support",
    "dashboard_support",
    "storage_support",
]
