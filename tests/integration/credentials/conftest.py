"""Fixtures for the credentials tests: a SoftHSM token key with a certificate from the test CA, the local
Roles Anywhere endpoint + moto with a role and profile for it, and the bundled helper installed by the role."""
import datetime
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ansible import ensure_collection_link, run_playbook
from tests.support.aws import moto_server, provision, ra_endpoint, ra_endpoint_tls  # noqa: F401
from tests.support.ca import issue_client_cert, make_file_ca
from tests.support.tokens import make_softhsm_token

# The signer and helper are imported as the collection's module_utils, exactly as hosts import them.
if str(ensure_collection_link()) not in sys.path:
    sys.path.insert(0, str(ensure_collection_link()))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca, _pkcs11  # noqa: E402

HERE = Path(__file__).parent
KEY_LABEL = "ra-host"
ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:ListBucket", "sts:GetCallerIdentity"],
                   "Resource": "*"}],
}


@dataclass
class Stand:
    """Everything a host would have: token key + certificate, file key + certificate, ARNs, the endpoint."""

    directory: Path
    token: object
    ca: object
    cert_path: Path
    pin_file: Path
    token_public_key: object
    file_key_path: Path
    file_cert_path: Path
    arns: dict
    ra: object

    @property
    def key_uri(self):
        return f"pkcs11:token={self.token.token_label};object={KEY_LABEL}?pin-source=file:{self.pin_file}"

    def issue(self, path, public_key=None, cn="host1.fleet.test"):
        """A certificate from the test CA (for the token key unless ``public_key``), written to ``path``."""
        return issue_client_cert(self.ca, public_key or self.token_public_key,
                                 subject={"O": "rolesanywhere.fleet tests", "CN": cn}, path=path)

    def file_key_public(self):
        return serialization.load_pem_private_key(self.file_key_path.read_bytes(), None).public_key()

    def issue_expired(self, path):
        """A token-key certificate from the test CA that expired yesterday (the CA code refuses to make one)."""
        from cryptography import x509

        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_ca.build_name({"CN": "expired.fleet.test"}))
                .issuer_name(self.ca.cert.subject).public_key(self.token_public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=3)).not_valid_after(now - datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.ca.key, _ca.hashes.SHA384()))
        Path(path).write_bytes(_ca.pem(cert))
        return cert

    def helper_args(self, command="credential-process", certificate=None, private_key=None, **overrides):
        args = [command, "--certificate", str(certificate or self.cert_path),
                "--private-key", private_key or self.key_uri,
                "--trust-anchor-arn", self.arns["trust_anchor_arn"], "--profile-arn", self.arns["profile_arn"],
                "--role-arn", self.arns["role_arn"], "--endpoint", self.ra.url,
                "--pkcs11-lib", self.token.module_path]
        for flag, value in overrides.items():
            args += [f"--{flag.replace('_', '-')}", str(value)]
        return args

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.token.env)
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def stand(ra_endpoint, tmp_path_factory):  # noqa: F811
    directory = tmp_path_factory.mktemp("stand")
    token = make_softhsm_token(directory / "token")
    with _pkcs11.open_token_session(token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, KEY_LABEL, "ec", curve="secp256r1")
        public_key = _pkcs11.public_key_of(keypair)
    ca = make_file_ca(directory / "ca")
    cert_path = directory / "host.pem"
    issue_client_cert(ca, public_key, subject={"O": "rolesanywhere.fleet tests", "CN": "host1.fleet.test"},
                      path=cert_path)
    pin_file = directory / "pin"
    pin_file.write_text(token.pin + "\n")
    os.chmod(pin_file, 0o600)
    file_key = ec.generate_private_key(ec.SECP256R1())
    file_key_path = directory / "file.key"
    file_key_path.write_bytes(file_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    os.chmod(file_key_path, 0o600)
    file_cert_path = directory / "file.pem"
    issue_client_cert(ca, file_key.public_key(), subject={"O": "rolesanywhere.fleet tests", "CN": "file.fleet.test"},
                      path=file_cert_path)
    arns = provision(ra_endpoint, ca.pem(), role_policy=ROLE_POLICY)
    return Stand(directory, token, ca, cert_path, pin_file, public_key, file_key_path, file_cert_path, arns,
                 ra_endpoint)


@pytest.fixture(scope="session")
def installed_helper_vars(tmp_path_factory):
    """Role variables installing the bundled helper (impl python) into a temporary prefix."""
    root = tmp_path_factory.mktemp("helper")
    return dict(signing_helper_impl="python", signing_helper_python_deps="existing",
                signing_helper_python=sys.executable, signing_helper_prefix=str(root / "opt"),
                signing_helper_bin_dir=str(root / "bin"))


@pytest.fixture(scope="session")
def installed_helper(installed_helper_vars):
    """The bundled helper installed by the role signing_helper; returns the command's path."""
    run_playbook(HERE / "playbooks" / "signing_helper.yml", extra_vars=installed_helper_vars)
    return Path(installed_helper_vars["signing_helper_bin_dir"]) / "rolesanywhere-credential-helper"
