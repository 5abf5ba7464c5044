"""Hosts of several Debian releases: each release has its image, a host keeps its release, the wheelhouse serves
every host Python."""
import re

import pytest

from tests.fleet import netns_fleet

WHEELHOUSE = netns_fleet.REPO / ".work" / "wheelhouse"


def test_an_unknown_release_is_refused_naming_the_known_ones():
    with pytest.raises(netns_fleet.FleetError, match="unknown release 'buster': use one of bullseye, bookworm, trixie"):
        netns_fleet.up(count=1, release="buster")


@pytest.mark.parametrize("abi", ["cp39", "cp311", "cp313"])
def test_the_wheelhouse_has_the_host_packages_for_each_host_python(abi):
    names = [p.name for p in WHEELHOUSE.glob("*.whl")]
    version = (int(abi[2]), int(abi[3:]))

    def fits(name):  # cpXY-cpXY, or abi3 built for an older or equal CPython, or pure Python
        python, wheel_abi = name.split("-")[-3:-1]
        if wheel_abi == "abi3":
            return (int(python[2]), int(python[3:])) <= version
        return wheel_abi == abi or "py3" in python.split(".")

    for project in ("python_pkcs11", "cryptography", "cffi", "asn1crypto", "pycparser"):
        assert any(n.startswith(project + "-") and fits(n) for n in names), (project, abi, names)
    # one version of each pure-Python wheel: pip never meets one its Python's Requires-Python rejects
    pure = [re.match(r"([^-]+)-", n)[1] for n in names if n.endswith("-none-any.whl")]
    assert len(pure) == len(set(pure)), names


@pytest.mark.fleet
def test_a_host_keeps_its_release_across_stop_and_start(fleet):
    hosts = fleet(1, release="trixie")
    (name,) = hosts.names
    assert hosts.host(name).release == "trixie"
    assert hosts.run(name, "cat /etc/debian_version").stdout.startswith("13")
    hosts.stop(name)
    hosts.start(name)
    assert hosts.host(name).release == "trixie"
    assert hosts.run(name, "cat /etc/debian_version").stdout.startswith("13")
