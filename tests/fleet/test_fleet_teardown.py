"""Runs after test_fleet.py: once the last host is gone, nothing of the fleet may remain."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.support.ansible import REPO

pytestmark = [
    pytest.mark.fleet,
    pytest.mark.skipif(os.geteuid() != 0, reason="the test fleet needs root: network namespaces, a bridge, nftables"),
]


def test_teardown_leaves_nothing_behind():
    forwarding = netns_fleet.read_forwarding()
    hosts = netns_fleet.up(count=2, fresh=True, owner_pid=os.getpid())
    pids = [h.pid for h in hosts]
    netns_fleet.remove([h.name for h in hosts])
    for host in hosts:
        assert not Path(f"/run/netns/{host.netns}").exists()
        assert not Path(f"/sys/class/net/{host.veth}").exists()
        assert not host.directory.exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert netns_fleet.read_forwarding() == forwarding

    state = netns_fleet.status()
    running = [h["name"] for h in (state or {}).get("hosts", []) if h["running"]]
    if running:
        pytest.skip(f"other sessions still run fleet hosts ({' '.join(running)}): cannot check global teardown")
    supervisor = netns_fleet.supervisor_pid()
    deadline = time.monotonic() + 15
    # The supervisor removes its socket before its process has exited: wait for both.
    while (netns_fleet.leftovers() != {"netns": [], "links": [], "guard": False, "supervisor": None}
           or (supervisor is not None and netns_fleet.process_running(supervisor))):
        assert time.monotonic() < deadline, (netns_fleet.leftovers(), supervisor)
        time.sleep(0.2)
    assert netns_fleet.read_forwarding() == forwarding


def _only_user_of_the_fleet():
    """Skip when other sessions have hosts (running, or stopped with state `down` would delete)."""
    state = netns_fleet.status()
    if state is not None and state["hosts"]:
        names = " ".join(h["name"] for h in state["hosts"])
        pytest.skip(f"other sessions use the fleet ({names}): this test would stop them")


def test_supervisor_tears_down_on_sigterm():
    _only_user_of_the_fleet()
    hosts = netns_fleet.up(count=2, fresh=True, owner_pid=os.getpid())
    supervisor = netns_fleet.supervisor_pid()
    os.kill(supervisor, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while netns_fleet.process_running(supervisor) or any(netns_fleet.process_running(h.pid) for h in hosts):
        assert time.monotonic() < deadline, "supervisor or hosts still running 15 s after SIGTERM"
        time.sleep(0.1)
    assert netns_fleet.leftovers() == {"netns": [], "links": [], "guard": False, "supervisor": None}


def test_down_cleans_up_after_a_crashed_supervisor():
    _only_user_of_the_fleet()
    forwarding = netns_fleet.read_forwarding()
    hosts = netns_fleet.up(count=2, fresh=True, owner_pid=os.getpid())
    os.kill(netns_fleet.supervisor_pid(), signal.SIGKILL)  # no teardown at all: hosts, bridge, guard stay
    time.sleep(0.2)
    assert netns_fleet.leftovers()["netns"] == sorted(h.netns for h in hosts)
    report = netns_fleet.down()
    assert {f"netns {h.netns}" for h in hosts} | {"bridge flbr0", "nft table inet ra_fleet_guard"} <= set(report["removed"])
    assert netns_fleet.leftovers() == {"netns": [], "links": [], "guard": False, "supervisor": None}
    assert not any(netns_fleet.process_running(h.pid) for h in hosts)
    assert netns_fleet.read_forwarding() == forwarding


def test_hosts_of_another_session_are_left_alone_and_removed_when_it_ends():
    other_session = subprocess.Popen(
        [sys.executable, "-c", "import os, time; from tests.fleet import netns_fleet as f; "
         "print(f.up(['lease-a'], fresh=True, owner_pid=os.getpid())[0].pid, flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        host_pid = int(other_session.stdout.readline())
        assert netns_fleet.remove(["lease-a"], owner_pid=os.getpid()) == []
        with pytest.raises(netns_fleet.FleetError, match="belongs to process"):
            netns_fleet.up(["lease-a"], owner_pid=os.getpid())
        assert netns_fleet.process_running(host_pid)
    finally:
        other_session.kill()
        other_session.wait()
    deadline = time.monotonic() + 15
    while netns_fleet.process_running(host_pid) or not _forgotten("lease-a"):
        assert time.monotonic() < deadline, "the supervisor did not remove the host of a session that ended"
        time.sleep(0.2)
    assert not (netns_fleet.RUN / "hosts" / "lease-a").exists()


def _forgotten(name):
    state = netns_fleet.status()
    return state is None or name not in {h["name"] for h in state["hosts"]}
