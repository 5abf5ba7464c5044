"""The table of bad and hostile inputs (docs/security.md lists it): every module, the roles' entry points and the
bundled helper.

Each row runs one thing as a real process and asserts: it fails (or the helper exits non-zero) with one message
that names the problem and the fix (the row's text), no traceback, and nothing changed: the files of the stand
(content, mode, owner), the objects on the token and the Roles Anywhere resources at the endpoint are the same
before and after. Injection rows put a line break, a flag or a section into every string that lands in another
format (INI file, shell-quoted command line, unit file, environment file, URI).
"""
import datetime
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.ansible import COLLECTIONS, ansible_env, run_module, run_playbook
from tests.support.aws import provision, start_ra_local
from tests.support.ca import issue_client_cert, make_file_ca
from tests.support.tokens import make_softhsm_token

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _ca, _pkcs11

PLAYBOOKS = Path(__file__).parent / "playbooks"
KEY = "ra-host"
HOST_SUBJECT = {"OU": "fleet", "CN": "host1.fleet.test"}
ANCHOR = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/aaaa"
PROFILE = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/bbbb"
ROLE = "arn:aws:iam::111122223333:role/app"


# ---------------------------------------------------------------- the stand

@dataclass
class Stand:
    root: Path
    token: object
    ca: object
    cert_path: Path
    pin_file: Path
    arns: dict
    ra: object
    csr_key: object

    def snapshot(self):
        files = {}
        for path in sorted(self.root.rglob("*")):
            info = path.lstat()
            # SoftHSM rewrites token.object at every login: the token is compared by its objects instead
            plain = path.is_file() and not path.is_symlink() and path.name != "token.object"
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if plain else ""
            files[str(path.relative_to(self.root))] = (info.st_mode, info.st_uid, info.st_gid, digest)
        with _pkcs11.open_token_session(self.token.spec()) as session:
            objects = sorted((int(o[0x0]), str(o[0x3])) for o in list(session.get_objects()))  # class, label
        client = self.ra.client()
        aws = (sorted(a["trustAnchorArn"] + str(a["enabled"]) for a in client.list_trust_anchors()["trustAnchors"]),
               sorted(p["profileArn"] + str(p["enabled"]) for p in client.list_profiles()["profiles"]))
        return files, objects, aws


@pytest.fixture(scope="module")
def stand(ra_endpoint, moto_server, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("hostile")
    token = make_softhsm_token(root / "token", pin="97315")
    with _pkcs11.open_token_session(token.spec(), rw=True) as session:
        public_key = _pkcs11.public_key_of(_pkcs11.generate_keypair(session, KEY, "ec", curve="secp256r1"))
    ca = make_file_ca(root / "ca")
    cert_path = root / "host.pem"
    issue_client_cert(ca, public_key, subject=HOST_SUBJECT, path=cert_path)
    pin_file = root / "pin"
    pin_file.write_text(token.pin)
    pin_file.chmod(0o600)
    (root / "aws").mkdir(mode=0o700)
    (root / "aws" / "config").write_text("[default]\nregion = us-east-1\n")
    (root / "issued").mkdir()
    (root / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    (root / "loose.pin").write_text(token.pin)
    (root / "loose.pin").chmod(0o644)
    now = datetime.datetime.now(datetime.timezone.utc)
    for name, moment in (("expired-ca.pem", now - datetime.timedelta(days=400)),
                         ("future-ca.pem", now + datetime.timedelta(days=10))):
        cert = _ca.build_ca_certificate(ca.key, ca.cert.subject, 30, 0, now=moment)
        (root / name).write_bytes(_ca.pem(cert))
    other = make_file_ca(root / "other-ca")
    arns = provision(ra_endpoint, ca.pem())
    client = ra_endpoint.client()
    disabled = client.create_profile(name="disabled", roleArns=[arns["role_arn"]], enabled=False)["profile"]
    arns["disabled_profile_arn"] = disabled["profileArn"]
    s = Stand(root, token, ca, cert_path, pin_file, arns, ra_endpoint, ec.generate_private_key(ec.SECP256R1()))
    s.other_ca = other
    skewed = start_ra_local(moto_server, root / "skewed-ra",
                            fixed_time=(now + datetime.timedelta(hours=2)).strftime("%Y%m%dT%H%M%SZ"))
    s.skewed_ra, s.skewed_arns = skewed, provision(skewed, ca.pem())
    yield s
    skewed.stop()


# ---------------------------------------------------------------- how a row runs

@dataclass
class Outcome:
    failed: bool
    message: str
    output: str


def module(name, args):
    def run(stand):
        result = run_module(name, args(stand) if callable(args) else args)
        return Outcome(result.failed, result.get("msg", ""), result["raw_stdout"] + result["stderr"])
    return run


def helper(args, env=None):
    def run(stand):
        code = ("import sys; from ansible_collections.rolesanywhere.fleet.plugins.module_utils._credential_helper "
                "import main; sys.exit(main())")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment.update(stand.token.env, PYTHONPATH=str(COLLECTIONS), HOME=str(stand.root))
        environment.update(env(stand) if env else {})
        proc = subprocess.run([sys.executable, "-c", code] + args(stand), capture_output=True, text=True,
                              env=environment, timeout=60, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.stdout == "" and len(lines) == 1, f"one stderr line and no stdout expected:\n{proc.stderr}"
        return Outcome(proc.returncode != 0, lines[0], proc.stdout + proc.stderr)
    return run


def playbook(name, variables):
    def run(stand):
        proc = run_playbook(PLAYBOOKS / name, extra_vars=variables(stand), check=False, env=ansible_env())
        failed_lines = [line for line in proc.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
        return Outcome(proc.returncode != 0 and len(failed_lines) == 1, "\n".join(failed_lines),
                       proc.stdout + proc.stderr)
    return run


def helper_args(stand, **overrides):
    values = {"certificate": str(stand.cert_path),
              "private-key": f"pkcs11:token={stand.token.token_label};object={KEY}?pin-source=file:{stand.pin_file}",
              "trust-anchor-arn": stand.arns["trust_anchor_arn"], "profile-arn": stand.arns["profile_arn"],
              "role-arn": stand.arns["role_arn"], "endpoint": stand.ra.url, "pkcs11-lib": stand.token.module_path}
    values.update(overrides)
    argv = ["credential-process"]
    for flag, value in values.items():
        if value is not None:
            argv += [f"--{flag}", value]
    return argv


def credential_args(stand, **extra):
    args = dict(user="nobody", config_path=str(stand.root / "aws" / "config"), profile="ra", impl="python",
                certificate=str(stand.cert_path), token_label=stand.token.token_label, key_label=KEY,
                module_path=stand.token.module_path, pin_file=str(stand.pin_file), token_env=dict(stand.token.env),
                trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE, region="us-east-1")
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


def token_args(stand, **extra):
    args = dict(module_path=stand.token.module_path, token_label=stand.token.token_label,
                pin_file=str(stand.pin_file), token_env=dict(stand.token.env), label="new-key", key_type="ec",
                curve="secp256r1")
    args.update(extra)
    return {k: v for k, v in args.items() if v is not None}


def csr_pem(stand, subject=None, sans=None, extension=None, key=None):
    attrs = {"OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME}
    subject = HOST_SUBJECT if subject is None else subject
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(attrs[k], v) for k, v in subject.items()]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key or stand.csr_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def issue_args(stand, csr=None, ca=None, **extra):
    ca = ca or stand.ca
    args = dict(csr=csr if csr is not None else csr_pem(stand), path=str(stand.root / "issued" / "host1.pem"),
                ca_cert_path=str(ca.cert_path), ca_key=ca.key_option(), subject=HOST_SUBJECT, subject_alt_name=[],
                validity_days=30, renew_before_days=7)
    args.update(extra)
    return args


def pathlen_csr():
    """basicConstraints CA:FALSE with a pathlen: cryptography refuses to build it, openssl does not."""
    proc = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", "/dev/stdout", "-subj", "/OU=fleet/CN=host1.fleet.test",
                           "-addext", "basicConstraints=critical,CA:FALSE,pathlen:0", "-out", "/dev/stdout"],
                          capture_output=True, text=True, check=True)
    return proc.stdout[proc.stdout.index("-----BEGIN CERTIFICATE REQUEST"):]


def service(stand, **overrides):
    values = dict(name="app", mode="update", user="daemon", certificate=str(stand.cert_path),
                  private_key="/etc/ra/host.key", trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE,
                  credentials_file="/home/app/.aws/credentials")
    values.update(overrides)
    return values


def service_vars(stand, **overrides):
    return dict(signing_helper_services=[service(stand, **overrides)], signing_helper_manage_services=False,
                signing_helper_unit_dir=str(stand.root / "units"), signing_helper_service_env_dir=str(stand.root / "env"),
                signing_helper_selected="python", signing_helper_bin_dir="/usr/local/bin")


INJECT = "x\n[profile evil]\ncredential_process = /bin/sh -c id"

# (id, run, text the one message must contain)
ROWS = [
    # --- aws_credential_process: injection into the INI file and the command line; ARNs; PINs; users
    ("profile-injects-section", module("aws_credential_process", lambda s: credential_args(s, profile="ra]\n[evil")),
     "line break or control character"),
    ("profile-with-space", module("aws_credential_process", lambda s: credential_args(s, profile="ra evil")),
     "cannot be written as an INI section name"),
    ("region-injects-key", module("aws_credential_process", lambda s: credential_args(s, region=INJECT)),
     "line break or control character"),
    ("certificate-is-a-flag", module("aws_credential_process",
                                     lambda s: credential_args(s, certificate="--endpoint=https://evil.example")),
     "would be read as a flag"),
    ("key-label-injects-line", module("aws_credential_process", lambda s: credential_args(s, key_label=INJECT)),
     "line break or control character"),
    ("token-env-name-injects", module("aws_credential_process",
                                      lambda s: credential_args(s, token_env={"A B=c LD_PRELOAD": "/tmp/x.so"})),
     "environment variable name"),
    ("token-env-value-newline", module("aws_credential_process",
                                       lambda s: credential_args(s, token_env={"SOFTHSM2_CONF": INJECT})),
     "line break or control character"),
    ("endpoint-not-a-url", module("aws_credential_process",
                                  lambda s: credential_args(s, endpoint="https://ra.example/ --no-verify-ssl")),
     "is not a plain http(s) URL"),
    ("session-name-is-a-flag", module("aws_credential_process", lambda s: credential_args(s, role_session_name="-x")),
     "role_session_name"),
    ("anchor-arn-of-wrong-kind", module("aws_credential_process", lambda s: credential_args(s, trust_anchor_arn=PROFILE)),
     "is not a Roles Anywhere trust-anchor ARN"),
    ("profile-arn-other-region", module("aws_credential_process", lambda s: credential_args(
        s, profile_arn=PROFILE.replace("us-east-1", "eu-west-1"))), "name different regions"),
    ("role-arn-is-a-user", module("aws_credential_process",
                                  lambda s: credential_args(s, role_arn="arn:aws:iam::111122223333:user/app")),
     "is not an IAM role ARN"),
    ("relative-helper-path", module("aws_credential_process", lambda s: credential_args(s, helper_path="bin/helper")),
     "is not an absolute path"),
    ("aws-impl-pin-file-loose-mode", module("aws_credential_process", lambda s: credential_args(
        s, impl="aws", pin_file=str(s.root / "loose.pin"))), "run chmod 0600"),
    ("aws-impl-pin-file-missing", module("aws_credential_process", lambda s: credential_args(
        s, impl="aws", pin_file=str(s.root / "no-such.pin"))), "does not exist"),
    ("unknown-user", module("aws_credential_process", lambda s: credential_args(s, user="no-such-user-ra")),
     "does not exist on this host"),
    ("key-id-not-hex", module("aws_credential_process", lambda s: credential_args(s, key_id="zz")), "hex"),
    ("config-path-in-a-dir-anyone-writes", module("aws_credential_process", lambda s: credential_args(
        s, config_path="/tmp/../tmp/ra-config")), "contains '..'"),

    # --- token modules: PINs, libraries, tokens, ids, key sizes, curves, subjects
    ("wrong-pin", module("pkcs11_key", lambda s: token_args(s, pin_file=None, pin="00000")), "PIN"),
    ("pin-file-loose-mode", module("pkcs11_key", lambda s: token_args(s, pin_file=str(s.root / "loose.pin"))),
     "chmod 0600"),
    ("missing-library", module("pkcs11_key", lambda s: token_args(s, module_path="/usr/lib/no-such-pkcs11.so")),
     "no-such-pkcs11.so"),
    ("wrong-token-label", module("pkcs11_key", lambda s: token_args(s, token_label="no-such-token")), "no-such-token"),
    ("non-hex-key-id", module("pkcs11_key", lambda s: token_args(s, id="0xZZ")), "hex"),
    ("impossible-rsa-size", module("pkcs11_key", lambda s: token_args(s, key_type="rsa", curve=None, size=1000)),
     "size"),
    ("unknown-curve", module("pkcs11_key", lambda s: token_args(s, curve="secp999r1")), "secp999r1"),
    ("malformed-subject", module("pkcs11_csr", lambda s: dict(token_args(s, key_type=None, curve=None, label=KEY),
                                                              subject={"XX": "a"}, path=str(s.root / "x.csr"))),
     "Unknown subject attribute"),

    # --- the own CA: a host is not trusted by its CA
    ("csr-asks-for-another-cn", module("x509_issue", lambda s: issue_args(
        s, csr_pem(s, {"OU": "fleet", "CN": "host2.fleet.test"}))), "asks for subject"),
    ("csr-asks-for-another-ou", module("x509_issue", lambda s: issue_args(
        s, csr_pem(s, {"OU": "admins", "CN": "host1.fleet.test"}))), "asks for subject"),
    ("csr-asks-for-an-extra-san", module("x509_issue", lambda s: issue_args(
        s, csr_pem(s, sans=["host2.fleet.test"]))), "asks for subjectAltName"),
    ("csr-names-nobody", module("x509_issue", lambda s: issue_args(s, csr_pem(s, subject={}), subject=None)),
     "empty subject and no subjectAltName"),
    ("csr-ca-false-with-pathlen", module("x509_issue", lambda s: issue_args(s, pathlen_csr())),
     "malformed extension"),
    ("csr-asks-for-ca-true", module("x509_issue", lambda s: issue_args(
        s, csr_pem(s, extension=x509.BasicConstraints(ca=True, path_length=None)))), "CA:TRUE"),
    ("csr-weak-rsa-key", module("x509_issue", lambda s: issue_args(
        s, csr_pem(s, key=rsa.generate_private_key(65537, 1024)))), "1024"),
    ("garbage-pem-csr", module("x509_issue", lambda s: issue_args(s, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                                                     "-----END CERTIFICATE REQUEST-----\n")),
     "cannot be parsed"),
    ("negative-validity-days", module("x509_issue", lambda s: issue_args(s, validity_days=-5)),
     "validity_days must be a positive number"),
    ("ca-cert-and-key-mismatch", module("x509_issue", lambda s: dict(issue_args(s), ca_key=s.other_ca.key_option())),
     "does not belong to the CA key"),
    ("ca-expired", module("x509_issue", lambda s: dict(issue_args(s), ca_cert_path=str(s.root / "expired-ca.pem"))),
     "expired"),
    ("ca-not-yet-valid", module("x509_issue", lambda s: dict(issue_args(s), ca_cert_path=str(s.root / "future-ca.pem"))),
     "validity_not_yet_valid"),
    ("wrong-ca-passphrase", module("x509_issue", lambda s: dict(
        issue_args(s), ca_key={"path": str(s.ca.key_path), "passphrase": "wrong-passphrase"})), "passphrase"),

    # --- the bundled helper: one stderr line, exit 1
    ("helper-garbage-certificate", helper(lambda s: helper_args(s, certificate=str(s.root / "garbage.pem"))),
     "certificate"),
    ("helper-unreachable-endpoint", helper(lambda s: helper_args(s, endpoint="http://127.0.0.1:9")), "127.0.0.1:9"),
    ("helper-disabled-profile", helper(lambda s: helper_args(s, **{"profile-arn": s.arns["disabled_profile_arn"]})),
     "AccessDeniedException"),
    ("helper-anchor-arn-of-wrong-kind", helper(lambda s: helper_args(
        s, **{"trust-anchor-arn": s.arns["profile_arn"]})), "StatusCode"),
    ("helper-clock-skew", helper(lambda s: helper_args(
        s, endpoint=s.skewed_ra.url, **{k.replace("_", "-"): s.skewed_arns[k] for k in
                                        ("trust_anchor_arn", "profile_arn", "role_arn")})), "StatusCode: 403"),
    ("helper-wrong-pin", helper(lambda s: helper_args(
        s, **{"private-key": f"pkcs11:token={s.token.token_label};object={KEY}?pin-value=00000"})), "PIN"),
    ("helper-cache-dir-is-a-link", helper(lambda s: helper_args(s, **{"cache-dir": str(s.root / "cache-link")})),
     "is a symbolic link"),

    # --- the roles' entry points
    ("unit-certificate-injects-directive", playbook("signing_helper_services.yml", lambda s: service_vars(
        s, certificate="/etc/ra/host.pem\nExecStartPre=/bin/sh -c id")), "certificate holds a line break"),
    ("unit-writable-path-injects-path", playbook("signing_helper_services.yml", lambda s: service_vars(
        s, read_write_paths=["/home/app/.aws /etc"])), "read_write_paths must be absolute paths without spaces"),
    ("unit-env-value-expands", playbook("signing_helper_services.yml", lambda s: service_vars(
        s, environment={"SOFTHSM2_CONF": "$RA_PRIVATE_KEY"})), "environment values must not hold $"),
    ("unit-user-injects", playbook("signing_helper_services.yml", lambda s: service_vars(s, user="root\nUser=root")),
     "user must be a plain user name"),
    ("unit-value-with-backslash", playbook("signing_helper_services.yml", lambda s: service_vars(
        s, profile_arn=PROFILE + "\\n")), "profile_arn holds a line break, control character or backslash"),
    ("unit-argument-is-a-flag", playbook("signing_helper_services.yml", lambda s: service_vars(
        s, region="--no-verify-ssl")), "region starts with - and would be read as a flag"),
    ("token-role-short-pin", playbook("token_role.yml", lambda s: dict(
        token_user_pin="12", token_pin_file=str(s.root / "role.pin"), token_install_packages=False)),
     "at least 4 characters"),
]


@pytest.fixture(scope="module", autouse=True)
def _links(stand):
    link = stand.root / "cache-link"
    if not link.is_symlink():
        (stand.root / "elsewhere").mkdir(mode=0o700)
        link.symlink_to(stand.root / "elsewhere")


def test_the_table_has_35_rows_or_more():
    assert len(ROWS) >= 35 and len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("run, text", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_fails_clearly_and_changes_nothing(stand, run, text):
    before = stand.snapshot()
    outcome = run(stand)
    assert outcome.failed, outcome.output[-3000:]
    assert text in outcome.message, outcome.message
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    assert stand.token.pin not in outcome.output
    after = stand.snapshot()
    assert after[0] == before[0], [k for k in set(after[0]) | set(before[0]) if after[0].get(k) != before[0].get(k)]
    assert after[1:] == before[1:]
