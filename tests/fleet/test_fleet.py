"""The local test fleet itself: isolation, identity, stop/start with state, Ansible over SSH, clean teardown."""
import json
import re
import socket
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fleet import netns_fleet
from tests.support.ansible import run_playbook

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def five(fleet):
    forwarding = netns_fleet.read_forwarding()
    hosts = fleet(5)
    yield hosts
    hosts.remove()
    assert netns_fleet.read_forwarding() == forwarding


def _on_all(five, command):
    with ThreadPoolExecutor(len(five.names)) as pool:
        return dict(zip(five.names, pool.map(lambda name: five.run(name, command), five.names)))


def _controller_addresses():
    """The machine's own IPv4 addresses outside loopback and the test subnet."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    addresses = re.findall(r"^\d+:\s+(\S+)\s+inet\s+([\d.]+)/", out, re.M)
    return [addr for dev, addr in addresses if dev != "lo" and dev != netns_fleet.BRIDGE]


def _guard_counter(chain):
    out = subprocess.run(["nft", "-j", "list", "chain", "inet", netns_fleet.GUARD_TABLE, chain],
                         capture_output=True, text=True, check=True).stdout
    return sum(expr["counter"]["packets"] for item in json.loads(out)["nftables"] if "rule" in item
               for expr in item["rule"]["expr"] if "counter" in expr)


CONNECT = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(\"connected\")' {} {}"


def test_each_host_has_its_own_identity_and_no_way_out(five):
    facts = _on_all(five, "hostname; cat /etc/hostname; ip -4 route; wc -c </etc/resolv.conf; "
                          "cat /sys/class/net/eth0/address; cat /etc/hosts")
    for host in five.hosts:
        hostname, etc_hostname, route, resolv_size, mac, *hosts_lines = facts[host.name].stdout.splitlines()
        assert hostname == etc_hostname == host.name
        assert route.split()[:3] == ["10.213.0.0/24", "dev", "eth0"]  # the only route: no default
        assert resolv_size == "0"
        assert mac == netns_fleet.host_mac(host.index)
        assert f"{host.address}\t{host.name}" in hosts_lines
        assert not any(other.name in "\n".join(hosts_lines) for other in five.hosts if other is not host)


def test_recorded_pid_is_the_hosts_sshd(five):
    for host in five.hosts:
        status = Path(f"/proc/{host.pid}/status").read_text()
        assert re.search(r"^NSpid:\s+%d\s+1$" % host.pid, status, re.M), status  # PID 1 inside its namespace
        assert Path(f"/proc/{host.pid}/comm").read_text().strip() == "sshd"
        assert Path(f"/proc/{host.pid}/ns/net").stat().st_ino == Path(f"/run/netns/{host.netns}").stat().st_ino


def test_hosts_reach_each_other_and_the_bridge_address_only(five):
    first, second = five.hosts[:2]
    assert five.run(first.name, CONNECT.format(second.address, 22)).stdout.strip() == "connected"

    with socket.create_server((netns_fleet.BRIDGE_ADDRESS, 0)) as listener:  # stand-ins bind here
        port = listener.getsockname()[1]
        assert five.run(first.name, CONNECT.format(netns_fleet.BRIDGE_ADDRESS, port)).stdout.strip() == "connected"

    outside = _controller_addresses()
    assert outside, "expected the controller to have an address outside the test subnet"
    for address in outside:
        no_route = five.run(first.name, CONNECT.format(address, 22), check=False)
        assert no_route.returncode != 0 and "unreachable" in no_route.stderr, no_route.stderr


def test_guard_drops_traffic_to_the_controller_even_with_a_route(five):
    """Root on a host can add a route; the nftables guard still drops what leaves the subnet."""
    host = five.hosts[2]
    address = _controller_addresses()[0]
    before = _guard_counter("guard_input")
    five.run(host.name, f"ip route add {address}/32 via {netns_fleet.BRIDGE_ADDRESS}")
    try:
        attempt = five.run(host.name, CONNECT.format(address, 22), check=False)
    finally:
        five.run(host.name, f"ip route del {address}/32")
    # Without the guard the controller answers at once (connected or refused); dropped packets time out.
    assert attempt.returncode != 0 and "timed out" in attempt.stderr, attempt.stderr
    assert _guard_counter("guard_input") > before


def test_stopped_host_keeps_its_state_and_others_keep_running(five):
    host = five.hosts[3]
    five.run(host.name, "echo kept > /root/marker; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub > /root/hostkey")
    five.stop(host.name)
    assert five.run(host.name, "true", check=False).returncode == 255
    assert not Path(f"/run/netns/{host.netns}").exists()
    assert (five.upper(host.name) / "root" / "marker").read_text() == "kept\n"
    for other in five.hosts[:3]:
        assert five.run(other.name, "hostname").stdout.strip() == other.name

    five.start(host.name)
    restarted = five.run(host.name, "cat /root/marker; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub; "
                                    "cat /root/hostkey; hostname")
    marker, fingerprint, saved_fingerprint, hostname = restarted.stdout.splitlines()
    assert (marker, hostname) == ("kept", host.name)
    assert fingerprint == saved_fingerprint
    assert five.host(host.name).pid != host.pid


def test_ansible_play_across_the_fleet(five, tmp_path):
    """ping-style play with forks 10; pipelining leaves no module files on the hosts."""
    playbook = tmp_path / "ping.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: fleet
          gather_facts: false
          tasks:
            - ansible.builtin.ping:
            - ansible.builtin.command: hostname
              register: hostname
              changed_when: false
            - ansible.builtin.assert:
                that: hostname.stdout == inventory_hostname
        """))
    for socket_path in (netns_fleet.RUN / "cp").iterdir():
        subprocess.run(["ssh", "-S", str(socket_path), "-O", "exit", "fleet"], capture_output=True)
    proc = run_playbook(playbook, inventory=str(five.inventory), env={"ANSIBLE_FORKS": "10"})
    recap = dict(re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=0\s+unreachable=0\s+failed=0", proc.stdout, re.M))
    assert recap == {name: "3" for name in five.names}, proc.stdout
    masters = subprocess.run(["ssh", "-F", str(five.ssh_config), "-O", "check", five.names[0]],
                             capture_output=True, text=True)
    assert masters.returncode == 0, masters.stderr  # Ansible left a ControlPersist master on the fleet's path
    remote_tmp = _on_all(five, "test -e /root/.ansible/tmp && echo created || echo none")
    assert {name: proc.stdout.strip() for name, proc in remote_tmp.items()} == {name: "none" for name in five.names}


def test_systemd_host_boots_with_units(fleet):
    booted = fleet(1, systemd=True)
    name = booted.names[0]
    try:
        state = booted.run(name, "systemctl is-system-running --wait; systemctl --failed --no-legend | wc -l; "
                                 "hostname; ip -4 route | grep -c default || true; ps -p 1 -o comm=")
        assert state.stdout.split() == ["running", "0", name, "0", "systemd"]
        booted.run(name, "touch /etc/kept")
        booted.stop(name)
        booted.start(name)
        assert booted.run(name, "test -f /etc/kept && systemctl is-system-running --wait").stdout.strip() == "running"
    finally:
        booted.remove()


ROLE_PACKAGES = ("python3-venv", "python3-cryptography", "softhsm2", "opensc", "p11-kit-modules", "gnutls-bin",
                 "swtpm", "swtpm-tools", "tpm2-tools", "tpm2-abrmd", "libtpm2-pkcs11-1", "libtpm2-pkcs11-tools",
                 "libtss2-tcti-tabrmd0", "awscli", "sudo", "cron")


def test_hosts_have_the_role_packages_and_install_wheels_offline(five):
    host = five.hosts[4].name
    installed = five.run(host, ["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *ROLE_PACKAGES]).stdout
    assert sorted(line.split()[0] for line in installed.splitlines() if line.endswith("install ok installed")) \
        == sorted(ROLE_PACKAGES)

    wheelhouse = netns_fleet.REPO / ".work" / "wheelhouse"
    subprocess.run(["scp", "-q", "-r", "-F", str(five.ssh_config), str(wheelhouse), f"{host}:/var/tmp/wheelhouse"],
                   check=True, capture_output=True)
    five.run(host, "python3 -m venv --system-site-packages /opt/pkcs11 && /opt/pkcs11/bin/pip install -q "
                   "--no-index --find-links /var/tmp/wheelhouse python-pkcs11==0.10.1")
    # python-pkcs11 from the wheelhouse drives the host's SoftHSM2
    probe = five.run(host, "/opt/pkcs11/bin/python -c 'import pkcs11, cryptography; "
                           "lib = pkcs11.lib(\"/usr/lib/softhsm/libsofthsm2.so\"); print(lib.manufacturer_id)'")
    assert probe.stdout.strip() == "SoftHSM"
