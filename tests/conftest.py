"""Shared pytest fixtures. Each support module owns one kind of real part (tokens, AWS stand-ins, the fleet)."""
import pytest

from tests.support.ansible import run_module, run_playbook  # noqa: F401  (re-exported for tests)


@pytest.fixture
def module():
    """Run a rolesanywhere.fleet module as a real process: ``module("pkcs11_key", {...}, check_mode=True)``."""
    return run_module
