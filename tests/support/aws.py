"""AWS stand-ins as real processes: an IAM-enforcing moto server and the local Roles Anywhere endpoint.

Fixtures (session scope): ``moto_server`` and ``ra_endpoint`` (HTTP), ``ra_endpoint_tls`` (HTTPS with a
throwaway CA in ``.ca_file``). Both bind ``RA_TEST_BIND_HOST`` (default 127.0.0.1); the fleet tests set it to
the test bridge address. Everything started here is stopped by its recorded PID.

The moto server enforces IAM from its 7th request on: the first six (unauthenticated) create the ``admin``
user (Allow */*) and the ``rolesanywhere-local`` user whose keys ra_local uses to read roles and mint
credentials. Use ``moto_server.client("iam")`` etc. for admin boto3 clients.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BIND_HOST = os.environ.get("RA_TEST_BIND_HOST", "127.0.0.1")
REGION = "us-east-1"
ACCOUNT = "123456789012"
ADMIN_USER = "admin"
SERVICE_USER = "rolesanywhere-local"
SERVICE_USER_ACTIONS = ["iam:GetRole", "sts:AssumeRoleWithWebIdentity", "acm-pca:GetCertificateAuthorityCertificate"]
SETUP_ACTIONS = 6  # create_user, put_user_policy, create_access_key for each of the two users
START_TIMEOUT = 20


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str

    def as_kwargs(self):
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}


def _free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_for_port(host, port, proc, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening on {host}:{port}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def stop_process(proc, timeout=5):
    """SIGTERM the recorded PID, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class MotoServer:
    host: str
    port: int
    proc: subprocess.Popen
    admin: Keys = None
    service: Keys = None
    region: str = REGION
    account: str = ACCOUNT

    @property
    def endpoint(self):
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def client(self, service, keys=None, **kwargs):
        """A boto3 client for this moto server, as the admin user unless ``keys`` (Keys or a dict) say otherwise."""
        credentials = (keys.as_kwargs() if isinstance(keys, Keys) else keys) or self.admin.as_kwargs()
        kwargs.setdefault("endpoint_url", self.endpoint)
        return boto3.client(service, region_name=self.region, **credentials, **kwargs)

    def stop(self):
        stop_process(self.proc)


def start_moto(host=BIND_HOST, log_path=None):
    port = _free_port(host)
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_ACTIONS), MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    log = open(log_path or os.devnull, "ab")
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", host, "-p", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    server = MotoServer(host=host, port=port, proc=proc)
    try:
        _wait_for_port(host, port, proc)
        iam = server.client("iam", keys={"aws_access_key_id": "setup", "aws_secret_access_key": "setup"})
        server.admin = _create_user(iam, ADMIN_USER, ["*"])
        server.service = _create_user(iam, SERVICE_USER, SERVICE_USER_ACTIONS)
    except BaseException:
        server.stop()
        raise
    return server


def _create_user(iam, name, actions):
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName=f"{name}-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@dataclass
class RaEndpoint:
    host: str
    port: int
    scheme: str
    proc: subprocess.Popen
    moto: MotoServer
    log_path: Path
    ca_file: str = None
    region: str = REGION
    account: str = ACCOUNT

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def client(self, keys=None, **kwargs):
        """A boto3 ``rolesanywhere`` client for this endpoint (admin keys unless ``keys`` is given)."""
        kwargs.setdefault("verify", self.ca_file or True)
        kwargs.setdefault("config", Config(retries={"max_attempts": 1}))
        credentials = (keys.as_kwargs() if isinstance(keys, Keys) else keys) or self.moto.admin.as_kwargs()
        return boto3.client("rolesanywhere", endpoint_url=self.url, region_name=self.region, **credentials, **kwargs)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stop_process(self.proc)
        self.proc.stdout.close()


def start_ra_local(moto, workdir, host=BIND_HOST, tls=None, state=None, clock_skew=None, fixed_time=None,
                   strict_algorithm=False):
    """Start ``python -m ra_local`` against ``moto``; ``tls`` = (cert_path, key_path, ca_path) for HTTPS."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"ra_local-{uuid.uuid4().hex[:8]}.log"
    argv = [sys.executable, "-m", "ra_local", "--host", host, "--port", "0", "--aws-endpoint", moto.endpoint,
            "--region", moto.region, "--account", moto.account]
    if tls:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    if state:
        argv += ["--state", str(state)]
    if clock_skew is not None:
        argv += ["--clock-skew", str(clock_skew)]
    if fixed_time:
        argv += ["--fixed-time", fixed_time]
    if strict_algorithm:
        argv.append("--strict-algorithm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=moto.service.access_key_id, AWS_SECRET_ACCESS_KEY=moto.service.secret_access_key,
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, PYTHONPATH=str(REPO))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("ra_local listening on "):
        stop_process(proc)
        raise RuntimeError(f"ra_local did not start: {line!r}\n{log_path.read_text(errors='replace')}")
    url = line.split()[3]
    port = int(url.rsplit(":", 1)[1])
    return RaEndpoint(host=host, port=port, scheme=url.split(":")[0], proc=proc, moto=moto, log_path=log_path,
                      ca_file=str(tls[2]) if tls else None, region=moto.region, account=moto.account)


def write_tls_files(directory, host=BIND_HOST):
    """A throwaway CA and a server certificate for ``host`` (IP SAN); returns (cert, key, ca) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ra_local test TLS CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
          .not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san = x509.IPAddress(ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "server.pem", directory / "server.key", directory / "ca.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[1], 0o600)
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return tuple(str(p) for p in paths)


def roles_anywhere_trust_policy(trust_anchor_arn=None, conditions=None):
    """The trust policy AWS documents for Roles Anywhere roles, optionally pinned to a trust anchor."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "rolesanywhere.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
    }
    condition = dict(conditions or {})
    if trust_anchor_arn:
        condition.setdefault("ArnEquals", {})["aws:SourceArn"] = trust_anchor_arn
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def provision(ra, ca_pem, role_name=None, role_policy=None, conditions=None, pin_trust_anchor=True, **profile_args):
    """Trust anchor (enabled, CERTIFICATE_BUNDLE ``ca_pem``) + IAM role (Roles Anywhere trust policy, inline
    ``role_policy``) + enabled profile listing the role. Returns a dict of the three ARNs and the role name."""
    client = ra.client()
    suffix = uuid.uuid4().hex[:8]
    anchor = client.create_trust_anchor(
        name=f"anchor-{suffix}", enabled=True,
        source={"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": ca_pem}},
    )["trustAnchor"]
    role_name = role_name or f"ra-role-{suffix}"
    iam = ra.moto.client("iam")
    policy = roles_anywhere_trust_policy(anchor["trustAnchorArn"] if pin_trust_anchor else None, conditions)
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(policy), MaxSessionDuration=43200)["Role"]
    if role_policy:
        iam.put_role_policy(RoleName=role_name, PolicyName="access", PolicyDocument=json.dumps(role_policy))
    profile_args.setdefault("enabled", True)
    profile = client.create_profile(name=f"profile-{suffix}", roleArns=[role["Arn"]], **profile_args)["profile"]
    return {
        "trust_anchor_arn": anchor["trustAnchorArn"],
        "profile_arn": profile["profileArn"],
        "role_arn": role["Arn"],
        "role_name": role_name,
    }


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = start_moto(BIND_HOST, tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ra_endpoint(moto_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ra_local")
    endpoint = start_ra_local(moto_server, workdir, state=workdir / "state.json")
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def ra_endpoint_tls(moto_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ra_local_tls")
    endpoint = start_ra_local(moto_server, workdir, tls=write_tls_files(workdir / "tls"))
    yield endpoint
    endpoint.stop()
