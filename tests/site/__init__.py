"""A local site for a test fleet: everything the controller side of a real deployment has, on the test bridge.

moto (IAM, STS, S3) with aws_gate in front (session policies enforced as AWS does), ra_local (Roles Anywhere)
talking to moto through the gate, the own CA made by the collection's role ``ca`` and the AWS side made by
``playbooks/aws_setup.yml``. ``LocalSite.enrol_vars()`` is what ``enrol.yml`` needs to enrol the fleet.
Used by the fleet tests, the enrol role's molecule scenarios and ``make demo``. Everything started is stopped
by its PID in ``close()``.
"""
import contextlib
import dataclasses
import json
from pathlib import Path

from aws_gate.process import running_gate
from tests.fleet import netns_fleet
from tests.support.ansible import REPO, run_playbook
from tests.support.aws import start_moto, start_ra_local

CA_PASSPHRASE = "local-site-ca-passphrase"
TOKEN_PIN = "4831-token"
TOKEN_SO_PIN = "so-pin-93571"
OU = "Innovation"
ALLOWED_BUCKET = "fleet-data"
OTHER_BUCKET = "fleet-other"


class LocalSite:
    def __init__(self, workdir, bind=netns_fleet.BRIDGE_ADDRESS, allowed_source_ips=(netns_fleet.SUBNET,)):
        self.workdir = Path(workdir)
        self.bind = bind
        self.allowed_source_ips = list(allowed_source_ips)
        self.ca_directory = self.workdir / "ca"
        self._stack = contextlib.ExitStack()
        self.moto = self.gate = self.ra = None
        self.arns = {}

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.moto = start_moto(self.bind, self.workdir / "moto.log")
        self._stack.callback(self.moto.stop)
        admin = self.moto.admin
        self.gate = self._stack.enter_context(running_gate(
            self.moto.endpoint, self.workdir / "aws_gate.log", host=self.bind,
            env={"AWS_ACCESS_KEY_ID": admin.access_key_id, "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
                 "AWS_DEFAULT_REGION": self.moto.region}))
        host, port = self.gate.url.rsplit("//", 1)[1].rsplit(":", 1)
        through_gate = dataclasses.replace(self.moto, host=host, port=int(port))
        self.ra = start_ra_local(through_gate, self.workdir / "ra_local", host=self.bind)
        self._stack.callback(self.ra.stop)
        s3 = self.moto.client("s3")
        for bucket in (ALLOWED_BUCKET, OTHER_BUCKET):
            s3.create_bucket(Bucket=bucket)
        self._setup_controller_side()

    def _setup_controller_side(self):
        output = self.workdir / "aws_setup.json"
        run_playbook(REPO / "tests" / "site" / "setup.yml", extra_vars={
            "ca_directory": str(self.ca_directory),
            "ca_key_passphrase": CA_PASSPHRASE,
            "ca_subject": {"O": "Example", "CN": "Local site CA"},
            "aws_setup_name": "site",
            "aws_setup_region": self.moto.region,
            "aws_setup_endpoint_url": self.ra.url,
            "aws_setup_aws_endpoint_url": self.moto.endpoint,
            "aws_setup_access_key": self.moto.admin.access_key_id,
            "aws_setup_secret_key": self.moto.admin.secret_access_key,
            "aws_setup_role_x509_subject": {"OU": OU},
            "aws_setup_allowed_bucket": ALLOWED_BUCKET,
            "aws_setup_allowed_source_ips": self.allowed_source_ips,
            "aws_setup_output_file": str(output),
        })
        self.arns = json.loads(output.read_text())

    def close(self):
        self._stack.close()

    def enrol_vars(self, **overrides):
        """Inventory variables that enrol a fleet host against this site (SoftHSM2, bundled helper)."""
        values = {
            "enrol_token_so_pin": TOKEN_SO_PIN,
            "enrol_token_pin": TOKEN_PIN,
            "enrol_token_install_packages": False,
            "enrol_wheelhouse": str(REPO / ".work" / "wheelhouse"),
            "enrol_subject": {"O": "Example", "OU": OU, "CN": "{{ inventory_hostname }}"},
            "enrol_require_subject": ["OU", "CN"],
            "enrol_ca_cert_path": str(self.ca_directory / "ca.pem"),
            "enrol_ca_key": {"path": str(self.ca_directory / "ca.key"), "passphrase": CA_PASSPHRASE},
            "enrol_cert_validity_days": 30,
            "enrol_cert_renew_before_days": 10,
            "enrol_helper_impl": "python",
            "enrol_trust_anchor_arn": self.arns["trust_anchor_arn"],
            "enrol_profile_arn": self.arns["profile_arn"],
            "enrol_role_arn": self.arns["role_arn"],
            "enrol_region": self.moto.region,
            "enrol_endpoint": self.ra.url,
            "enrol_sts_endpoint": self.gate.url,
            "enrol_credential_profiles": [{"user": "{{ enrol_token_user }}", "profile": "ra"}],
        }
        values.update(overrides)
        return values

    def secrets(self):
        return (TOKEN_PIN, TOKEN_SO_PIN, CA_PASSPHRASE)
