"""Runs after test_fleet.py: once the last host is gone, nothing of the fleet may remain."""
import os
import time
from pathlib import Path

import pytest

from tests.fleet import netns_fleet

pytestmark = pytest.mark.fleet


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
    if state is not None and state["hosts"]:
        pytest.skip(f"other sessions still use the fleet ({len(state['hosts'])} hosts): cannot check global teardown")
    supervisor = netns_fleet.supervisor_pid()
    deadline = time.monotonic() + 15
    while netns_fleet.leftovers() != {"netns": [], "links": [], "guard": False, "supervisor": None}:
        assert time.monotonic() < deadline, netns_fleet.leftovers()
        time.sleep(0.2)
    assert supervisor is None or not Path(f"/proc/{supervisor}").exists()
    assert netns_fleet.read_forwarding() == forwarding
