"""pytest fixtures for the local test fleet (tests/fleet/netns_fleet.py).

``fleet(n, systemd=False, names=(), release=None, releases=())`` starts ``n`` network-namespace SSH hosts on
free indices (plus hosts with the given names) running Debian ``release`` (bullseye, bookworm = default, trixie),
plus one host per entry of ``releases``, and returns a :class:`TestFleet`: hosts, an inventory and an ssh_config for just these
hosts, ``stop``/``start`` (state is kept), ``run`` over ssh, and each host's upper dir. Every host is removed
at the end of the session (pytest finalizer); if pytest dies, the fleet supervisor removes them itself
because this process owned them. Other sessions' hosts are never touched.

Use it from a test directory's conftest.py::

    from tests.support.fleet import fleet  # noqa: F401
"""
import os
import shlex
import subprocess

import pytest

from tests.fleet import netns_fleet


class TestFleet:
    """Hosts started together by one ``fleet(n)`` call."""

    __test__ = False  # not a test class

    def __init__(self, hosts, directory):
        self.hosts = hosts
        self.directory = directory
        self.inventory = netns_fleet.write_inventory(hosts, directory / "inventory.yml")
        self.ssh_config = netns_fleet.write_ssh_config(hosts, directory / "ssh_config")
        self.removed = False

    @property
    def names(self):
        return [h.name for h in self.hosts]

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)

    def address(self, name):
        return self.host(name).address

    def upper(self, name):
        """The host's overlay upper dir: the files it changed, readable from the controller without SSH."""
        return self.host(name).upper

    def stop(self, name):
        """Stop the host (as if powered off); its files stay for ``start``."""
        assert netns_fleet.stop([name], owner_pid=os.getpid()), f"{name} is not this session's host"

    def start(self, name, timeout=60.0):
        """Start a stopped host again with its state; returns when sshd answers."""
        (restarted,) = netns_fleet.up([name], timeout=timeout, owner_pid=os.getpid())
        self.hosts = [restarted if h.name == name else h for h in self.hosts]

    def run(self, name, command, check=True, timeout=60, input=None):
        """Run ``command`` (a string for the remote shell, or an argv list) on the host over ssh."""
        remote = command if isinstance(command, str) else shlex.join(command)
        proc = subprocess.run(
            ["ssh", "-F", str(self.ssh_config), name, remote],
            capture_output=True, text=True, timeout=timeout, input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"on {name}: {remote!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def remove(self):
        """Stop the hosts and delete their state now (the session finalizer does it otherwise)."""
        netns_fleet.remove(self.names, owner_pid=os.getpid())
        self.removed = True

    def testinfra_hosts(self):
        """``--hosts`` for pytest-testinfra (with ``--ssh-config`` = :attr:`ssh_config`)."""
        return ",".join(f"ssh://{name}" for name in self.names)


class FleetFactory:
    def __init__(self, tmp_path_factory):
        self._tmp_path_factory = tmp_path_factory
        self.fleets = []

    def __call__(self, n=0, systemd=False, names=(), timeout=60.0, release=None, releases=()):
        """``n`` hosts named flNNN on free indices, plus hosts with the given ``names`` (e.g. "web1"), all running
        ``release`` (default bookworm); plus one host per entry of ``releases`` (a mixed fleet)."""
        hosts = []
        if n or names:
            hosts += netns_fleet.up(names, count=n, systemd=systemd, fresh=True, timeout=timeout,
                                    owner_pid=os.getpid(), release=release)
        if releases:
            hosts += netns_fleet.up_mixed(releases, systemd=systemd, fresh=True, timeout=timeout, owner_pid=os.getpid())
        self.fleets.append(TestFleet(hosts, self._tmp_path_factory.mktemp("fleet")))
        return self.fleets[-1]

    def teardown(self):
        for fleet in self.fleets:
            if not fleet.removed:
                fleet.remove()
        self.fleets = []


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """Factory: ``fleet(5)`` or ``fleet(2, systemd=True)`` -> :class:`TestFleet`, removed at session end."""
    if os.geteuid() != 0:
        pytest.skip("the test fleet needs root: network namespaces, a bridge, nftables and mounts")
    if not netns_fleet.BASE_ROOTFS.is_dir():  # other releases' images: up() names the one missing
        pytest.fail(f"fleet base image {netns_fleet.BASE_ROOTFS} is missing: run tests/bootstrap.sh "
                    "(it runs tests/fleet/build_base_image.sh)")
    factory = FleetFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.teardown()
