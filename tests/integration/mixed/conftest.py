"""A mixed fleet -- SoftHSM2 hosts of Debian 11, 12 and 13 and a Debian 12 host with a software TPM -- enrolled by
one enrol.yml run against a local site (tests/site)."""
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import mixed, netns_fleet
from tests.site import LocalSite
from tests.support.ansible import REPO, run_playbook

ENROL = REPO / "playbooks" / "enrol.yml"


@dataclass
class MixedFleet:
    hosts: list
    tpm_hosts: list
    site: LocalSite
    inventory: Path
    enrolment: object  # the CompletedProcess of the enrol.yml run

    def by_release(self, release):
        return next(h for h in self.hosts if h.release == release and h not in self.tpm_hosts)


@pytest.fixture(scope="package")
def mixed_fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the test fleet needs root: network namespaces, a bridge, nftables and mounts")
    hosts, tpm_hosts = mixed.start(os.getpid())
    try:
        workdir = tmp_path_factory.mktemp("mixed")
        with LocalSite(workdir / "site") as site:
            # enrol_token_user named: rotate.yml reads the profiles (they refer to it) without the enrol role.
            inventory = mixed.write_inventory(hosts, tpm_hosts, workdir / "inventory.yml", site.enrol_vars(
                enrol_helper_impl="auto", signing_helper_aws_url_template="", enrol_token_user="root"))
            enrolment = run_playbook(ENROL, inventory=str(inventory), check=False)
            yield MixedFleet(hosts, tpm_hosts, site, inventory, enrolment)
    finally:
        netns_fleet.remove([h.name for h in hosts], owner_pid=os.getpid())
