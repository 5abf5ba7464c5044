"""A rerun of enrol.yml after a change of inputs (a new CA, a new PIN file, a new profile ARN) re-enrols the
hosts whose inputs changed, and only those: each affected host ends up with what its change implies, and the
others report no change."""
import configparser
import json

import pytest
from cryptography import x509

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, recap, run_playbook
from tests.support.aws import provision
from tests.support.ca import make_file_ca

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
ENROL = REPO / "playbooks" / "enrol.yml"
CERTIFICATE = "/etc/rolesanywhere-fleet/rolesanywhere.pem"
NEW_PIN_FILE = "/etc/rolesanywhere-fleet/token-2.pin"


def read_host_file(fleet, name, path):
    return (fleet.upper(name) / path.lstrip("/")).read_bytes()


def aws_config(fleet, name):
    parser = configparser.RawConfigParser()
    parser.read_string(fleet.run(name, ["cat", "/root/.aws/config"]).stdout)
    return parser["profile ra"]


def assumed_role(fleet, site, name):
    identity = fleet.run(name, ["aws", "sts", "get-caller-identity", "--profile", "ra", "--endpoint-url",
                                site.gate.url, "--output", "json"])
    return json.loads(identity.stdout)["Arn"]


def test_a_change_of_inputs_re_enrols_the_affected_hosts_only(fleet, tmp_path):  # noqa: F811
    hosts = fleet(4)
    new_ca_host, new_pin_host, new_profile_host, unchanged_host = hosts.names
    with LocalSite(tmp_path / "site") as site:
        inventory = netns_fleet.write_inventory(hosts.hosts, tmp_path / "inventory.json", extra_vars=site.enrol_vars())
        first = run_playbook(ENROL, inventory=str(inventory))
        assert all(v["changed"] > 0 and v["failed"] == 0 for v in recap(first.stdout).values()), first.stdout[-6000:]
        before = {name: (read_host_file(hosts, name, CERTIFICATE), aws_config(hosts, name)) for name in hosts.names}

        # A new CA comes with its own trust anchor, and a role and profile that trust it.
        new_ca = make_file_ca(tmp_path / "new-ca", subject={"O": "Example", "CN": "Second site CA"})
        new_aws = provision(site.ra, new_ca.pem(), conditions={"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Innovation"}})
        new_profile_arn = site.ra.client().create_profile(
            name="site-second-profile", roleArns=[site.arns["role_arn"]], enabled=True)["profile"]["profileArn"]
        data = json.loads(inventory.read_text())
        host_vars = data["all"]["children"]["fleet"]["hosts"]
        host_vars[new_ca_host].update(
            enrol_ca_cert_path=str(new_ca.cert_path), enrol_ca_key=new_ca.key_option(),
            enrol_trust_anchor_arn=new_aws["trust_anchor_arn"], enrol_role_arn=new_aws["role_arn"],
            enrol_profile_arn=new_aws["profile_arn"])
        host_vars[new_pin_host].update(enrol_token_pin_file=NEW_PIN_FILE)
        host_vars[new_profile_host].update(enrol_profile_arn=new_profile_arn)
        inventory.write_text(json.dumps(data, indent=2))

        second = run_playbook(ENROL, inventory=str(inventory))
        summary = recap(second.stdout)
        assert all(v["failed"] == 0 and v["unreachable"] == 0 for v in summary.values()), second.stdout[-6000:]
        for name in (new_ca_host, new_pin_host, new_profile_host):
            assert summary[name]["changed"] > 0, (name, second.stdout[-6000:])
        assert summary[unchanged_host]["changed"] == 0, second.stdout[-6000:]

        third = run_playbook(ENROL, inventory=str(inventory))
        assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(third.stdout).values()), third.stdout[-6000:]

        # New CA: the certificate comes from it (the same key), and its role's credentials work.
        certificate = x509.load_pem_x509_certificate(read_host_file(hosts, new_ca_host, CERTIFICATE))
        certificate.verify_directly_issued_by(new_ca.cert)
        assert certificate.public_key() == x509.load_pem_x509_certificate(before[new_ca_host][0]).public_key()
        config = aws_config(hosts, new_ca_host)
        assert new_aws["trust_anchor_arn"] in config["credential_process"]
        assert f":assumed-role/{new_aws['role_name']}/" in assumed_role(hosts, site, new_ca_host)

        # New PIN file: the PIN is there (for the token user only) and the helper reads it from there.
        mode = hosts.run(new_pin_host, ["stat", "-c", "%a %U", NEW_PIN_FILE]).stdout.split()
        assert mode == ["600", "root"], mode
        assert NEW_PIN_FILE in aws_config(hosts, new_pin_host)["credential_process"]
        assert read_host_file(hosts, new_pin_host, CERTIFICATE) == before[new_pin_host][0]
        assert site.arns["role_arn"].rsplit("/", 1)[1] in assumed_role(hosts, site, new_pin_host)

        # New profile ARN: ~/.aws/config names it, and it gets credentials.
        config = aws_config(hosts, new_profile_host)
        assert new_profile_arn in config["credential_process"]
        assert site.arns["profile_arn"] not in config["credential_process"]
        assert site.arns["role_arn"].rsplit("/", 1)[1] in assumed_role(hosts, site, new_profile_host)

        # The unaffected host: the same certificate and config as before.
        assert read_host_file(hosts, unchanged_host, CERTIFICATE) == before[unchanged_host][0]
        assert dict(aws_config(hosts, unchanged_host)) == dict(before[unchanged_host][1])
        assert site.arns["role_arn"].rsplit("/", 1)[1] in assumed_role(hosts, site, unchanged_host)
