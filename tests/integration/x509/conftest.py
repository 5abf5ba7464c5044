"""Fixtures for the CA / X.509 tests: a file-key CA, SoftHSM2 tokens and token-resident CA keys."""
import pytest

from tests.support.ca import file_ca, make_file_ca as _make_file_ca  # noqa: F401
from tests.support.tokens import softhsm_token, swtpm, tpm_token  # noqa: F401
from tests.integration.x509.builders import make_token_keypair


@pytest.fixture
def token_ca(softhsm_token):
    """A SoftHSM2 token holding an EC P-384 key pair labelled ``ca-key`` (id 01); returns (token, key option)."""
    make_token_keypair(softhsm_token, "ca-key", "ec", curve="secp384r1", key_id="01")
    return softhsm_token, softhsm_token.module_args(label="ca-key", id="01")


@pytest.fixture
def make_file_ca():
    """The CA factory itself: ``make_file_ca(directory, key_type=..., curve=..., size=...)``."""
    return _make_file_ca
