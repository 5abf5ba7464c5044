"""A local fleet enrolled end to end against a local site (tests/site): netns SSH hosts, the own CA,
moto + aws_gate + ra_local on the bridge address."""
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.site import LocalSite
from tests.support.fleet import fleet  # noqa: F401


@dataclass
class EnrolSite:
    fleet: object
    site: LocalSite
    inventory: Path


@pytest.fixture(scope="module")
def enrol_site(fleet, tmp_path_factory):  # noqa: F811
    hosts = fleet(5)
    workdir = tmp_path_factory.mktemp("enrol")
    with LocalSite(workdir / "site") as site:
        inventory = netns_fleet.write_inventory(hosts.hosts, workdir / "inventory.yml", extra_vars=site.enrol_vars())
        yield EnrolSite(hosts, site, inventory)
