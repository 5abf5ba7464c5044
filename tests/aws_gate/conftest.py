"""Fixtures for the gate's tests: engineer C's IAM-enforcing moto server with aws_gate in front of it."""
import dataclasses

import pytest

from aws_gate.process import running_gate
from tests.support.aws import moto_server, start_ra_local  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def gate(moto_server, tmp_path_factory):  # noqa: F811
    """aws_gate on 127.0.0.1 in front of moto; it reads roles and policies as moto's admin user."""
    admin = moto_server.admin
    env = {"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
           "AWS_DEFAULT_REGION": moto_server.region}
    with running_gate(moto_server.endpoint, tmp_path_factory.mktemp("gate") / "aws_gate.log", env=env) as process:
        yield process


@pytest.fixture(scope="session")
def ra_through_gate(moto_server, gate, tmp_path_factory):  # noqa: F811
    """ra_local whose --aws-endpoint is the gate, so its credential minting passes through the gate."""
    host, port = gate.url.rsplit("//", 1)[1].rsplit(":", 1)
    via_gate = dataclasses.replace(moto_server, host=host, port=int(port))  # same moto, reached through the gate
    workdir = tmp_path_factory.mktemp("ra_local_via_gate")
    endpoint = start_ra_local(via_gate, workdir)
    yield endpoint
    endpoint.stop()
