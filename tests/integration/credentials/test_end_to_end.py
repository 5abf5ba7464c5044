"""End to end on this machine: token key + CA certificate, ra_local + moto, profile `ra` wired by
aws_credential_process to the bundled helper (installed by the role), then the AWS CLI uses it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import run_module
from tests.support.aws import provision
from tests.support.tokens import make_softhsm_token

from .conftest import ROLE_POLICY

AWS_CLI = str(Path(sys.executable).parent / "aws")


def cli_env(stand, home):
    # No AWS_* from the outside: only the profile may provide credentials. Other services go to moto.
    return stand.env(HOME=str(home), AWS_ENDPOINT_URL=stand.ra.moto.endpoint, AWS_DEFAULT_REGION="us-east-1",
                     AWS_EC2_METADATA_DISABLED="true")


def wire_profile(stand, helper, home, **extra):
    args = dict(user="root", config_path=str(home / ".aws" / "config"), profile="ra", impl="python",
                helper_path=str(helper), certificate=str(stand.cert_path), token_label=stand.token.token_label,
                key_label="ra-host", module_path=stand.token.module_path, pin_file=str(stand.pin_file),
                token_env=dict(stand.token.env), endpoint=stand.ra.url, region="us-east-1", **stand.arns)
    args.pop("role_name")
    args.update(extra)
    return args


@pytest.mark.slow
def test_aws_cli_gets_assumed_role_through_the_bundled_helper(stand, installed_helper, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    args = wire_profile(stand, installed_helper, home)
    assert run_module("aws_credential_process", args, check_mode=True).changed
    assert not (home / ".aws").exists()
    assert run_module("aws_credential_process", args).changed
    assert not run_module("aws_credential_process", args).changed
    assert stand.token.pin not in (home / ".aws" / "config").read_text().split("pin-source")[0]

    proc = subprocess.run([AWS_CLI, "sts", "get-caller-identity", "--profile", "ra", "--output", "json"],
                          capture_output=True, text=True, env=cli_env(stand, home), timeout=60)
    assert proc.returncode == 0, proc.stderr
    identity = json.loads(proc.stdout)
    serial_hex = format(_serial(stand.cert_path), "x")
    assert identity["Arn"] == f"arn:aws:sts::{stand.ra.account}:assumed-role/{stand.arns['role_name']}/{serial_hex}"

    bucket = "ra-e2e-" + serial_hex[:12]
    stand.ra.moto.client("s3").create_bucket(Bucket=bucket)
    proc = subprocess.run([AWS_CLI, "s3", "ls", "--profile", "ra"], capture_output=True, text=True,
                          env=cli_env(stand, home), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert bucket in proc.stdout


def _serial(cert_path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).serial_number


def test_rolesanywhere_session_module_with_token_key(stand):
    args = dict(certificate=str(stand.cert_path), module_path=stand.token.module_path,
                token_label=stand.token.token_label, pin_file=str(stand.pin_file), token_env=dict(stand.token.env),
                key_label="ra-host", endpoint=stand.ra.url, verify_identity=True,
                sts_endpoint=stand.ra.moto.endpoint, **stand.arns)
    args.pop("role_name")
    checked = run_module("rolesanywhere_session", args, check_mode=True)
    assert not checked.failed and not checked.changed, checked
    result = run_module("rolesanywhere_session", args)
    assert not result.failed and not result.changed, result
    serial_hex = format(_serial(stand.cert_path), "x")
    expected = f"arn:aws:sts::{stand.ra.account}:assumed-role/{stand.arns['role_name']}/{serial_hex}"
    assert result["assumed_role_arn"] == expected
    assert result["caller_identity"]["arn"] == expected
    assert result["subject_arn"].startswith(f"arn:aws:rolesanywhere:us-east-1:{stand.ra.account}:subject/")
    assert result["certificate_serial"] == str(_serial(stand.cert_path))
    assert "credentials" not in result and "SecretAccessKey" not in result["raw_stdout"]

    refused = run_module("rolesanywhere_session", dict(args, return_credentials=True))
    assert refused.failed and "no_log" in refused["msg"]
    secret = run_module("rolesanywhere_session", dict(args, return_credentials=True, _ansible_no_log=True))
    assert not secret.failed, secret
    creds = secret["credentials"]
    assert creds["access_key_id"].startswith("ASIA") and creds["secret_access_key"] and creds["session_token"]
    assert not run_module("rolesanywhere_session", args).changed


def run_helper(helper, stand, *args, env=None, timeout=60):
    return subprocess.run([str(helper), *args], capture_output=True, text=True, env=env or stand.env(),
                          timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_credential_process_output_is_byte_compatible(stand, installed_helper):
    proc = run_helper(installed_helper, stand, *stand.helper_args())
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.endswith("\n") and proc.stderr == ""
    document = json.loads(proc.stdout)
    assert list(document) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert document["Version"] == 1
    assert proc.stdout == json.dumps(document, separators=(",", ":"))
    assert document["Expiration"].endswith("Z") and len(document["Expiration"]) == 20


def test_bad_input_is_one_line_and_exit_1(stand, installed_helper, tmp_path):
    wrong_pin = f"pkcs11:token={stand.token.token_label};object=ra-host?pin-value=000000"
    assert_one_line_error(run_helper(installed_helper, stand, *stand.helper_args(private_key=wrong_pin)),
                          "PIN", "rejected", "not retried")
    # the wrong PIN was tried once and did not lock anything: the right one still works
    assert run_helper(installed_helper, stand, *stand.helper_args()).returncode == 0

    dead = stand.helper_args()
    dead[dead.index("--endpoint") + 1] = "http://127.0.0.1:9"
    assert_one_line_error(run_helper(installed_helper, stand, *dead), "cannot reach", "127.0.0.1:9")

    expired = tmp_path / "expired.pem"
    stand.issue_expired(expired)
    assert_one_line_error(run_helper(installed_helper, stand, *stand.helper_args(certificate=expired)),
                          "expired", "renew")

    assert_one_line_error(run_helper(installed_helper, stand, *stand.helper_args(certificate=stand.file_cert_path)),
                          "does not match the certificate")

    unknown = stand.helper_args()
    unknown[unknown.index("--profile-arn") + 1] = stand.arns["profile_arn"].rsplit("/", 1)[0] + \
        "/00000000-0000-0000-0000-000000000000"
    assert_one_line_error(run_helper(installed_helper, stand, *unknown), "StatusCode: 403",
                          "AccessDeniedException", "does not exist")

    assert_one_line_error(run_helper(installed_helper, stand, "credential-process", "--certificate",
                                     str(stand.cert_path)), "--trust-anchor-arn is required")
    bad_flag = run_helper(installed_helper, stand, "credential-process", "--pkcs11-pin", "1")
    assert bad_flag.returncode == 1 and "unrecognized arguments: --pkcs11-pin" in bad_flag.stderr


@pytest.mark.slow
def test_aws_impl_line_over_tls_with_pin_value_and_ssl_cert_file(stand, installed_helper, ra_endpoint_tls, tmp_path):
    """impl aws wiring (PIN as ?pin-value=, the endpoint's CA through SSL_CERT_FILE) is accepted by a helper with
    aws_signing_helper's flags; AWS's binary is not available here, so the bundled helper stands in for it."""
    arns = provision(ra_endpoint_tls, stand.ca.pem(), role_policy=ROLE_POLICY)
    home = tmp_path / "home"
    home.mkdir()
    args = dict(user="root", config_path=str(home / ".aws" / "config"), profile="ra", impl="aws",
                helper_path=str(installed_helper), certificate=str(stand.cert_path),
                token_label=stand.token.token_label, key_label="ra-host", module_path=stand.token.module_path,
                pin=stand.token.pin, token_env=dict(stand.token.env), endpoint=ra_endpoint_tls.url,
                ca_bundle=ra_endpoint_tls.ca_file, region="us-east-1",
                **{k: v for k, v in arns.items() if k != "role_name"})
    assert run_module("aws_credential_process", args).changed
    config = (home / ".aws" / "config").read_text()
    assert f"pin-value={stand.token.pin}" in config and f"SSL_CERT_FILE={ra_endpoint_tls.ca_file}" in config
    proc = subprocess.run([AWS_CLI, "sts", "get-caller-identity", "--profile", "ra", "--output", "json"],
                          capture_output=True, text=True, env=cli_env(stand, home), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Arn"].startswith(f"arn:aws:sts::{stand.ra.account}:assumed-role/{arns['role_name']}/")

    # Without the CA the TLS handshake fails: one line, exit 1.
    helper_args = stand.helper_args(private_key=f"pkcs11:token={stand.token.token_label};object=ra-host"
                                                f"?pin-value={stand.token.pin}")
    helper_args[helper_args.index("--endpoint") + 1] = ra_endpoint_tls.url
    assert_one_line_error(run_helper(installed_helper, stand, *helper_args), "cannot reach", "CERTIFICATE_VERIFY_FAILED")


def test_certificate_and_key_both_on_the_token(stand, installed_helper, tmp_path):
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11

    token = make_softhsm_token(tmp_path / "token", label="ra-both")
    with _pkcs11.open_token_session(token.spec(), rw=True) as session:
        keypair = _pkcs11.generate_keypair(session, "both", "ec", curve="secp256r1")
        cert = stand.issue(tmp_path / "both.pem", public_key=_pkcs11.public_key_of(keypair))
        _pkcs11.store_certificate(session, cert, "both", keypair.key_id)
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    pin_file.chmod(0o600)
    uri = f"pkcs11:token=ra-both;object=both?pin-source=file:{pin_file}"
    args = stand.helper_args(certificate=uri, private_key=uri)
    proc = run_helper(installed_helper, stand, *args, env=stand.env(**token.env))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["AccessKeyId"].startswith("ASIA")


def test_get_caller_identity_is_signed_correctly(stand):
    """The hosts' boto3-free STS call: moto (enforcing IAM) accepts our SigV4 and refuses a wrong secret."""
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509 as sigv4

    key = sigv4.load_private_key_file(str(stand.file_key_path))
    certificate = sigv4.load_certificate_file(str(stand.file_cert_path))
    session = sigv4.create_session(key, certificate, endpoint=stand.ra.url,
                                   **{k: v for k, v in stand.arns.items() if k != "role_name"})
    identity = sigv4.get_caller_identity(session, "us-east-1", endpoint=stand.ra.moto.endpoint)
    assert identity["arn"] == session.assumed_role_arn and identity["account"] == stand.ra.account
    secret = session.secret_access_key
    session.secret_access_key = ("y" if secret.startswith("x") else "x") + secret[1:]  # one in 64 starts with x
    with pytest.raises(sigv4.ServiceError) as refused:
        sigv4.get_caller_identity(session, "us-east-1", endpoint=stand.ra.moto.endpoint)
    assert refused.value.status == 403 and "STS: GetCallerIdentity" in str(refused.value)
    assert refused.value.error_type == "SignatureDoesNotMatch"
