"""Fixtures for the security tests: tokens, the test CA, moto + ra_local, the fleet."""
from tests.support.aws import moto_server, ra_endpoint  # noqa: F401
from tests.support.fleet import fleet  # noqa: F401
from tests.support.ca import file_ca  # noqa: F401
from tests.support.tokens import softhsm_token  # noqa: F401
from tests.integration.aws.conftest import boto, iam_conn, private_ca  # noqa: F401,E402
