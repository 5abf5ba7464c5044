"""Rollouts as automation controller / AWX runs them: a local site (tests/site) whose own CA lives on a CA host of
the fleet (tests/support/ca_host.py), not on the controller. Each test starts its own fresh hosts to enrol."""
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support import ca_host
from tests.support.ansible import REPO
from tests.support.fleet import fleet  # noqa: F401

ENROL = REPO / "playbooks" / "enrol.yml"


@dataclass
class CASite:
    fleet: object  # the TestFleet holding the CA host
    site: LocalSite
    ca: netns_fleet.Host
    workdir: Path

    def enrol_vars(self):
        return self.site.enrol_vars(**ca_host.enrol_ca_vars(self.site, self.ca.name))

    def inventory(self, hosts, path, **host_vars):
        return ca_host.write_inventory(hosts, self.ca, path, self.enrol_vars(), host_vars)

    def records(self):
        return ca_host.read_ca(self.ca.address)


@pytest.fixture(scope="session")
def ca_site(fleet, tmp_path_factory):  # noqa: F811
    ca_fleet = fleet(names=["ca1"])
    workdir = tmp_path_factory.mktemp("awx")
    with LocalSite(workdir / "site") as site:
        (ca,) = ca_fleet.hosts
        ca_host.install_ca(ca.address, site.ca_directory)
        yield CASite(ca_fleet, site, ca, workdir)
