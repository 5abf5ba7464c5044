#!/usr/bin/env python3
"""The local test fleet: network-namespace SSH hosts on a bridge of our own.

Each host is a network namespace (veth on the bridge ``flbr0``, 10.213.0.(10+index)/24, no default route)
with its own mount/uts/ipc/pid namespaces, an overlay root over the debootstrap base image
(tests/fleet/build_base_image.sh) and sshd as PID 1 -- or systemd, booted by ``systemd-nspawn --boot`` in
the same network namespace, for hosts that need units and timers.

One supervisor process per machine owns every host: it keeps the ``Popen`` handles, installs the nftables
guard before the first host and removes it after the last, and tears everything down on exit (atexit,
SIGTERM/SIGINT/SIGHUP). It exits by itself shortly after its last host stops. Clients -- the CLI, the pytest
fixture (tests/support/fleet.py) and molecule's create/destroy playbooks -- talk to it over a unix socket
and start it when it is not running, so concurrent test sessions share one bridge and never collide.

CLI::

    netns_fleet.py up 1..5 [--systemd] [--fresh]   # fl001..fl005; names (``up web1 db1``) get free indices
    netns_fleet.py up --count 3                    # three hosts on free indices
    netns_fleet.py up --release bullseye 7 8       # Debian 11 hosts (bullseye, bookworm = default, trixie)
    netns_fleet.py stop fl002                      # stop; the host's state (its upper dir) is kept
    netns_fleet.py remove fl002                    # stop and forget (state deleted)
    netns_fleet.py status
    netns_fleet.py down                            # everything, including leftovers of a crashed run

All state lives under .work/fleet/run (socket, SSH key, inventory.yml, ssh_config, hosts/NAME/upper ...).
Network safety rules: docs/test-fleet.md.
"""
import argparse
import atexit
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".work" / "fleet"
# Debian releases a host can run: each has its own base image (tests/fleet/build_base_image.sh RELEASE).
RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
DEFAULT_RELEASE = "bookworm"
BASE_ROOTFS = WORK / "base" / "rootfs"  # bookworm's image keeps the path it had before there were several
RUN = WORK / "run"
SOCKET_PATH = RUN / "supervisor.sock"
NSPAWN_RUNTIME_DIR = Path("/run/systemd/nspawn")
INNER_SCRIPT = Path(__file__).resolve().parent / "host_init.sh"

BRIDGE = "flbr0"
SUBNET = "10.213.0.0/24"
BRIDGE_ADDRESS = "10.213.0.1"
FIRST_INDEX, LAST_INDEX = 1, 200  # addresses .11 - .210
GUARD_TABLE = "ra_fleet_guard"
NETNS_RE = re.compile(r"^fl\d{3}$")
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
FORWARDING_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv6/conf/default/forwarding")
IDLE_EXIT_SECONDS = 3.0
STOP_TIMEOUT = 10.0

GUARD_RULESET = f"""
table inet {GUARD_TABLE} {{
  chain guard_forward {{
    type filter hook forward priority -10; policy accept;
    iifname "{BRIDGE}" oifname != "{BRIDGE}" counter drop
    oifname "{BRIDGE}" iifname != "{BRIDGE}" counter drop
    ip saddr {SUBNET} ip daddr != {SUBNET} counter drop
    ip daddr {SUBNET} ip saddr != {SUBNET} counter drop
  }}
  chain guard_input {{
    type filter hook input priority -10; policy accept;
    iifname "{BRIDGE}" ip daddr != {SUBNET} counter drop
    iifname "{BRIDGE}" ip saddr != {SUBNET} counter drop
    iifname "{BRIDGE}" meta nfproto ipv6 counter drop
  }}
  chain guard_output {{
    type filter hook output priority -10; policy accept;
    ip saddr {SUBNET} ip daddr != {SUBNET} counter drop
    oifname "{BRIDGE}" ip daddr != {SUBNET} counter drop
    oifname "{BRIDGE}" meta nfproto ipv6 counter drop
  }}
}}
"""

SSHD_CONFIG = """\
# Written by the test fleet (tests/fleet/netns_fleet.py).
HostKey /etc/ssh/ssh_host_ed25519_key
AddressFamily inet
UseDNS no
PermitRootLogin prohibit-password
PasswordAuthentication no
MaxStartups 200:30:400
MaxSessions 50
"""

FLEET_INIT = """\
#!/bin/sh
# PID 1 of a fleet host without systemd.
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
"""


class FleetError(Exception):
    """A fleet operation failed; the message says what and where to look."""


def code_digest():
    """Identifies the fleet code a supervisor runs (a long-lived supervisor keeps the code it started with)."""
    digest = hashlib.sha256()
    for path in (Path(__file__).resolve(), INNER_SCRIPT):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def netns_name(index):
    return f"fl{index:03d}"


def host_address(index):
    return f"10.213.0.{10 + index}"


def host_mac(index):
    return f"02:00:0a:d5:00:{10 + index:02x}"


def base_rootfs(release):
    """The base image (overlay lower layer) of hosts running ``release``."""
    if release not in RELEASES:
        raise FleetError(f"unknown release {release!r}: use one of {', '.join(RELEASES)}")
    return BASE_ROOTFS if release == DEFAULT_RELEASE else WORK / "base" / release / "rootfs"


def parse_host_args(args):
    """``["1..3", "7", "web1"]`` -> ``[("fl001", 1), ("fl002", 2), ("fl003", 3), ("fl007", 7), ("web1", None)]``."""
    hosts = []
    for arg in args:
        match = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", arg)
        if match:
            first = int(match.group(1))
            last = int(match.group(2) or first)
            if not FIRST_INDEX <= first <= last <= LAST_INDEX:
                raise FleetError(f"host range {arg!r} must lie within {FIRST_INDEX}..{LAST_INDEX}")
            hosts += [(netns_name(i), i) for i in range(first, last + 1)]
        elif NETNS_RE.match(arg):
            hosts.append((arg, int(arg[2:])))
        elif HOST_NAME_RE.match(arg):
            hosts.append((arg, None))
        else:
            raise FleetError(f"{arg!r} is neither an index range like 1..5 nor a host name like web1 (a-z, 0-9, -)")
    return hosts


@dataclasses.dataclass
class Host:
    """A fleet host as clients see it."""

    name: str
    index: int
    release: str = DEFAULT_RELEASE
    systemd: bool = False
    running: bool = False
    pid: int | None = None  # PID 1 of the host (outer PID), or systemd-nspawn's PID
    owner: list | None = None  # [pid, start time] of the client process whose exit removes the host

    @property
    def address(self):
        return host_address(self.index)

    @property
    def netns(self):
        return netns_name(self.index)

    @property
    def veth(self):
        return f"{self.netns}h"

    @property
    def directory(self):
        return RUN / "hosts" / self.name

    @property
    def upper(self):
        """The host's own files (overlay upper dir): what it changed relative to the base image."""
        return self.directory / "upper"

    def to_json(self):
        return dataclasses.asdict(self) | {"address": self.address}

    @classmethod
    def from_json(cls, data):
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls) if field.name in data})


# ---------------------------------------------------------------------------------------------------------
# Shell-outs and small helpers


def _run(*cmd, check=True, input=None):
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise FleetError(f"{' '.join(cmd)} failed (rc={proc.returncode}): {proc.stderr.strip()}")
    return proc


def read_forwarding():
    """The machine's forwarding sysctls; the fleet never writes them (it only checks they stay the same)."""
    return {name: Path("/proc/sys", name).read_text().strip() for name in FORWARDING_SYSCTLS}


def _write_sysctl(path, value):
    with contextlib.suppress(FileNotFoundError):
        Path("/proc/sys", path).write_text(value)


def _netns_inode(netns):
    try:
        return os.stat(f"/run/netns/{netns}").st_ino
    except FileNotFoundError:
        return None


def _pid_in_netns(pid, netns):
    """True if ``pid`` still is a process inside our network namespace ``netns`` (guards against PID reuse)."""
    inode = _netns_inode(netns)
    try:
        return inode is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def _netns_pids(netns):
    proc = _run("ip", "netns", "pids", netns, check=False)
    return [int(pid) for pid in proc.stdout.split()] if proc.returncode == 0 else []


def _link_exists(name):
    return Path("/sys/class/net", name).exists()


def our_netns_list():
    proc = _run("ip", "netns", "list", check=False)
    return sorted(line.split()[0] for line in proc.stdout.splitlines() if line and NETNS_RE.match(line.split()[0]))


def process_identity(pid):
    """``[pid, start time]``: identifies a process across PID reuse."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return [pid, int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])]
    return None


def _process_alive(pid, start_time):
    return process_identity(pid) == [pid, start_time]


def process_running(pid):
    """True if ``pid`` exists and is not a zombie waiting for its parent."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _kill(pid, sig):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _sshd_ready(address, timeout=0.3):
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def ssh_key_path():
    return RUN / "ssh" / "id_ed25519"


def control_path():
    return RUN / "cp" / "%C"


def ssh_connection_options():
    """Connection sharing and timeouts: one ControlPersist master per host, shared by ssh and Ansible."""
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path()}", "-o", "ControlPersist=60s",
            "-o", "ConnectTimeout=5"]


def ssh_trust_options():
    """Host keys are generated per host and per run: nothing to check them against."""
    return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "LogLevel=ERROR"]


def ssh_options():
    """Options every SSH client of the fleet uses (plain ssh, Ansible, testinfra)."""
    return ["-o", f"IdentityFile={ssh_key_path()}", *ssh_trust_options(), *ssh_connection_options()]


def close_control_master(address):
    """Close the ControlPersist master for ``address``: an open master keeps a dead host's netns alive."""
    subprocess.run(["ssh", *ssh_options(), "-O", "exit", f"root@{address}"], capture_output=True)


def write_ssh_config(hosts, path):
    lines = ["# Written by tests/fleet/netns_fleet.py: the local test fleet.\n"]
    for host in hosts:
        lines.append(f"Host {host.name}\n  HostName {host.address}\n  User root\n")
        lines += [f"  {option.replace('=', ' ', 1)}\n" for option in ssh_options()[1::2]]
    Path(path).write_text("".join(lines))
    return Path(path)


def write_inventory(hosts, path, group="fleet", extra_vars=None):
    """An Ansible YAML inventory for ``hosts``: pipelining, ControlPersist on the fleet's ControlPath."""
    host_vars = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(ssh_key_path()),
        "ansible_ssh_args": " ".join(ssh_connection_options()),
        "ansible_ssh_common_args": " ".join(ssh_trust_options()),
        "ansible_pipelining": True,
        "ansible_python_interpreter": "/usr/bin/python3",
    } | dict(extra_vars or {})
    inventory = {
        "all": {
            "children": {group: {"hosts": {host.name: {"ansible_host": host.address} for host in hosts}}},
            "vars": host_vars,
        }
    }
    Path(path).write_text(json.dumps(inventory, indent=2) + "\n")  # JSON is YAML
    return Path(path)


def write_molecule_instance_config(hosts, path):
    """Add ``hosts`` to molecule's instance config (default driver); entries of other hosts are kept."""
    path = Path(path)
    names = {h.name for h in hosts}
    try:
        instances = [i for i in json.loads(path.read_text() or "[]") if i["instance"] not in names]
    except FileNotFoundError:
        instances = []
    instances += [{"instance": h.name, "address": h.address, "user": "root", "port": 22,
                   "identity_file": str(ssh_key_path())} for h in hosts]
    path.write_text(json.dumps(instances, indent=2) + "\n")  # JSON is YAML
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------------------
# The supervisor (one per machine)


class Supervisor:
    """Owns the bridge, the guard and every host process. Runs in its own process (``_supervise``)."""

    def __init__(self):
        self.hosts = {}  # name -> Host (running or stopped); persisted in state.json
        self.procs = {}  # name -> Popen of the host's launcher
        self.infra_up = False
        self.forwarding_at_setup = None
        self.nspawn_dir_existed = None  # whether systemd-nspawn's runtime dir predates our first systemd host
        self.idle_since = time.monotonic()
        self.code_digest = code_digest()
        self._load_state()

    # --- persistent state
    @property
    def state_path(self):
        return RUN / "state.json"

    def _load_state(self):
        with contextlib.suppress(FileNotFoundError, ValueError):
            for data in json.loads(self.state_path.read_text()):
                host = Host.from_json(data)
                host.running, host.pid = False, None
                self.hosts[host.name] = host

    def _save_state(self):
        hosts = sorted(self.hosts.values(), key=lambda h: h.index)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([h.to_json() for h in hosts], indent=1))
        tmp.replace(self.state_path)
        write_inventory(hosts, RUN / "inventory.yml")
        write_ssh_config(hosts, RUN / "ssh_config")

    # --- shared infrastructure: guard first up, last down
    def _prepare_run_dir(self):
        for sub in ("hosts", "ssh", "cp"):
            (RUN / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(RUN / "ssh", 0o700)
        if not ssh_key_path().exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rolesanywhere-fleet", "-f", str(ssh_key_path()))
        layer = RUN / "layer-sshd"
        (layer / "root" / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
        (layer / "root" / ".ssh" / "authorized_keys").write_text(ssh_key_path().with_suffix(".pub").read_text())
        (layer / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True, exist_ok=True)
        (layer / "etc" / "ssh" / "sshd_config.d" / "fleet.conf").write_text(SSHD_CONFIG)
        (layer / "usr" / "local" / "sbin").mkdir(parents=True, exist_ok=True)
        init = layer / "usr" / "local" / "sbin" / "fleet-init"
        init.write_text(FLEET_INIT)
        init.chmod(0o755)
        for sub in ("root/.aws", "var/lib/softhsm/tokens"):
            (layer / sub).mkdir(parents=True, exist_ok=True)

    def _infra_setup(self):
        if self.infra_up:
            return
        self.forwarding_at_setup = read_forwarding()
        self._log(f"forwarding sysctls at setup: {self.forwarding_at_setup}")
        _run("nft", "delete", "table", "inet", GUARD_TABLE, check=False)
        _run("nft", "-f", "-", input=GUARD_RULESET)
        self.infra_up = True  # from here on, teardown removes the guard
        if _link_exists(BRIDGE):
            _run("ip", "link", "del", BRIDGE)
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _write_sysctl(f"net/ipv6/conf/{BRIDGE}/disable_ipv6", "1")
        _run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        self._log(f"guard table inet {GUARD_TABLE} and bridge {BRIDGE} {BRIDGE_ADDRESS}/24 up")

    def _infra_teardown(self):
        if not self.infra_up:
            return
        if _link_exists(BRIDGE):
            _run("ip", "link", "del", BRIDGE, check=False)
        _run("nft", "delete", "table", "inet", GUARD_TABLE, check=False)
        self.infra_up = False
        if self.nspawn_dir_existed is False:  # systemd-nspawn created it for our hosts: remove it if empty
            for path in (*(NSPAWN_RUNTIME_DIR / sub for sub in ("locks", "propagate", "unix-export")), NSPAWN_RUNTIME_DIR):
                with contextlib.suppress(OSError):
                    path.rmdir()
        now = read_forwarding()
        if now != self.forwarding_at_setup:
            self._log(f"ERROR: forwarding sysctls changed during the run: {self.forwarding_at_setup} -> {now}")
        self._log(f"bridge and guard removed; forwarding sysctls {now}")

    # --- hosts
    @staticmethod
    def _may_use(host, owner):
        """A client that names an owner acts only on its own hosts and on hosts of no live owner."""
        return owner is None or not host.owner or host.owner == owner or not _process_alive(*host.owner)

    def _allocate(self, requested, count, owner, release):
        used = {h.index for h in self.hosts.values()} | {int(ns[2:]) for ns in our_netns_list()
                                                         if not any(h.netns == ns for h in self.hosts.values())}
        free = (i for i in range(FIRST_INDEX, LAST_INDEX + 1) if i not in used)
        chosen = []
        requested = list({name: (name, index) for name, index in requested}.values())  # each name once
        for name, index in requested + [(None, None)] * count:
            known = self.hosts.get(name)
            if known is not None:
                if index is not None and index != known.index:
                    raise FleetError(f"host {name} already has index {known.index}, not {index}")
                if not self._may_use(known, owner):
                    raise FleetError(f"host {name} belongs to process {known.owner[0]} (another test session); "
                                     "pick another name")
                chosen.append(known)
                continue
            if index is None:
                index = next(free, None)
                if index is None:
                    raise FleetError(f"no free host index left in {FIRST_INDEX}..{LAST_INDEX}")
            elif index in {h.index for h in (*self.hosts.values(), *chosen)}:
                raise FleetError(f"index {index} is taken by another host; pick another name or index")
            used.add(index)
            chosen.append(Host(name=name or netns_name(index), index=index, release=release))
        return chosen

    def up(self, requested=(), count=0, systemd=False, fresh=False, timeout=60.0, owner=None, release=None):
        """Start hosts; ``release`` (default bookworm) applies to new hosts, and with ``fresh`` to all."""
        release = release or DEFAULT_RELEASE
        if not base_rootfs(release).is_dir():
            raise FleetError(f"base image {base_rootfs(release)} ({release}) is missing: "
                             f"run tests/fleet/build_base_image.sh {release}")
        self._prepare_run_dir()
        hosts = self._allocate(requested, count, owner, release)
        self._infra_setup()
        starting = []
        for host in hosts:
            if host.running:
                continue
            if fresh or host.name not in self.hosts:  # a restarted host keeps its release, mode and owner
                host.systemd, host.owner, host.release = systemd, owner, release
            if systemd and self.nspawn_dir_existed is None:
                self.nspawn_dir_existed = NSPAWN_RUNTIME_DIR.exists()
            self.hosts[host.name] = host
            self._start(host, fresh)
            starting.append(host)
        self._save_state()
        try:
            self._wait_ready(starting, timeout)
        except FleetError:
            self.stop([h.name for h in starting])  # all or nothing; their console logs stay for the error
            raise
        return hosts

    def _start(self, host, fresh):
        self._remove_network(host)  # stale leftovers of this index, by name
        if fresh:
            shutil.rmtree(host.directory, ignore_errors=True)
        for sub in ("upper", "work", "merged"):
            (host.directory / sub).mkdir(parents=True, exist_ok=True)
        self._write_host_files(host)
        ns, veth = host.netns, host.veth
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns, "address", host_mac(host.index))
        _write_sysctl(f"net/ipv6/conf/{veth}/disable_ipv6", "1")
        _run("ip", "neigh", "del", host.address, "dev", BRIDGE, check=False)
        _run("ip", "link", "set", veth, "master", BRIDGE, "up")
        _run("ip", "-n", ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1")
        lower = f"{RUN / 'layer-sshd'}:{base_rootfs(host.release)}"
        pidfile = host.directory / "pid"
        pidfile.unlink(missing_ok=True)
        if host.systemd:
            # Not through `ip netns exec`: it remounts /sys, hiding the cgroup mounts nspawn needs.
            # systemd-nspawn joins the namespace itself (--network-namespace-path).
            launcher = ["unshare", "--mount", "--propagation", "private"]
        else:
            launcher = ["ip", "netns", "exec", ns,
                        "unshare", "--mount", "--uts", "--ipc", "--pid", "--kill-child", "--propagation", "private"]
        mode = "systemd" if host.systemd else "sshd"
        with open(host.directory / "console.log", "ab") as console:
            self.procs[host.name] = subprocess.Popen(
                [*launcher, "/bin/sh", str(INNER_SCRIPT),
                 mode, host.name, str(host.directory), lower, ns],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )
        host.running = True
        self._log(f"started {host.name} ({mode}, {host.release}) netns {ns} {host.address} "
                  f"launcher pid {self.procs[host.name].pid}")

    def _write_host_files(self, host):
        """Per-host identity, written into the upper dir before the overlay is mounted."""
        etc = host.upper / "etc"
        (etc / "ssh").mkdir(parents=True, exist_ok=True)
        (etc / "hostname").write_text(f"{host.name}\n")
        (etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n{host.address}\t{host.name}\n{BRIDGE_ADDRESS}\tfleet-controller\n"
        )
        (etc / "resolv.conf").write_text("")
        key = etc / "ssh" / "ssh_host_ed25519_key"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(key))

    def _wait_ready(self, hosts, timeout):
        deadline = time.monotonic() + timeout
        pending = list(hosts)
        while pending:
            for host in list(pending):
                proc = self.procs[host.name]
                if proc.poll() is not None:
                    self._reap(host)
                    raise FleetError(f"host {host.name} exited (rc={proc.returncode}) while starting; "
                                     f"see {host.directory / 'console.log'}:\n{self._console_tail(host)}")
                pid = self._read_pid(host)
                if pid and _sshd_ready(host.address):
                    host.pid = pid
                    pending.remove(host)
            if pending and time.monotonic() > deadline:
                names = " ".join(h.name for h in pending)
                raise FleetError(f"hosts not ssh-ready after {timeout:.0f} s: {names}; "
                                 f"see {pending[0].directory / 'console.log'}:\n{self._console_tail(pending[0])}")
            if pending:
                time.sleep(0.05)
        self._save_state()

    @staticmethod
    def _read_pid(host):
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int((host.directory / "pid").read_text())
        return None

    @staticmethod
    def _console_tail(host, lines=15):
        with contextlib.suppress(FileNotFoundError):
            return "".join((host.directory / "console.log").read_text(errors="replace").splitlines(True)[-lines:])
        return ""

    def stop(self, names, forget=False, owner=None):
        hosts = [self.hosts[name] for name in dict.fromkeys(names)
                 if name in self.hosts and self._may_use(self.hosts[name], owner)]
        running = [h for h in hosts if h.running]
        for host in running:
            close_control_master(host.address)
        for host in running:
            pid = host.pid or self._read_pid(host)
            if pid and _pid_in_netns(pid, host.netns):
                _kill(pid, signal.SIGTERM)
            elif host.name in self.procs:  # never became ready: the launcher is ours by Popen handle
                _kill(self.procs[host.name].pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for host in running:
            proc = self.procs.get(host.name)
            if proc is None:  # its launcher already ended and was reaped
                self._reap(host)
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._log(f"{host.name} did not stop within {STOP_TIMEOUT:.0f} s: SIGKILL")
                pid = host.pid or self._read_pid(host)
                if pid and _pid_in_netns(pid, host.netns):
                    _kill(pid, signal.SIGKILL)
                _kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            self._reap(host)
        for host in hosts:
            if forget:
                shutil.rmtree(host.directory, ignore_errors=True)
                del self.hosts[host.name]
        self._save_state()
        return hosts

    def _reap(self, host):
        """After the host's launcher exited: remove what is left of it in the network, by its own names."""
        self.procs.pop(host.name, None)
        host.running, host.pid = False, None
        self._remove_network(host)
        self._log(f"stopped {host.name}")
        if host.systemd:
            for sub in ("propagate", "unix-export"):
                shutil.rmtree(NSPAWN_RUNTIME_DIR / sub / host.netns, ignore_errors=True)

    def _remove_network(self, host):
        ns = host.netns
        if _netns_inode(ns) is not None:
            if not _wait_until(lambda: not _netns_pids(ns), 5.0):
                for pid in _netns_pids(ns):  # processes inside our own namespace, found by its name
                    _kill(pid, signal.SIGKILL)
                _wait_until(lambda: not _netns_pids(ns), 5.0)
        if _link_exists(host.veth):
            _run("ip", "link", "del", host.veth, check=False)
        if _netns_inode(ns) is not None:
            _run("ip", "netns", "del", ns, check=False)

    def poll(self):
        """Notice hosts whose process ended on its own (poweroff inside, crash) and hosts whose owner is gone."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self._log(f"{name} exited on its own (rc={proc.returncode})")
                self._reap(self.hosts[name])
                self._save_state()
        orphans = [h.name for h in self.hosts.values() if h.owner and not _process_alive(*h.owner)]
        if orphans:
            self._log(f"owner of {' '.join(orphans)} is gone: removing them")
            self.stop(orphans, forget=True)

    def shutdown(self):
        """Stop every host, then the bridge, then the guard."""
        self.stop([h.name for h in self.hosts.values() if h.running])
        self._infra_teardown()

    def status(self):
        return {
            "supervisor_pid": os.getpid(),
            "code_digest": self.code_digest,
            "hosts": [h.to_json() for h in sorted(self.hosts.values(), key=lambda h: h.index)],
            "forwarding_at_setup": self.forwarding_at_setup,
            "forwarding_now": read_forwarding(),
            "inventory": str(RUN / "inventory.yml"),
            "ssh_config": str(RUN / "ssh_config"),
        }

    def any_running(self):
        return any(h.running for h in self.hosts.values())

    @staticmethod
    def _log(message):
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    # --- request handling
    def handle(self, request):
        op = request.get("op")
        if op == "up":
            requested = [(h["name"], h.get("index")) for h in request.get("hosts", [])]
            hosts = self.up(requested, request.get("count", 0), bool(request.get("systemd")),
                            bool(request.get("fresh")), float(request.get("timeout", 60)), request.get("owner"),
                            request.get("release"))
            return {"hosts": [h.to_json() for h in hosts]}
        if op in ("stop", "remove"):
            hosts = self.stop(request["names"], forget=op == "remove", owner=request.get("owner"))
            return {"hosts": [h.to_json() for h in hosts]}
        if op == "status":
            return self.status()
        if op == "shutdown":
            self.shutdown()
            return {"forwarding_at_setup": self.forwarding_at_setup, "forwarding_now": read_forwarding()}
        raise FleetError(f"unknown operation {op!r}")


def _supervise():
    """Entry point of the supervisor process (started by clients, detached, logs to run/supervisor.log)."""
    RUN.mkdir(parents=True, exist_ok=True)
    lock = open(RUN / "supervisor.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent starter waits here until the other supervisor is gone
    if _connect(timeout=0.5) is not None:
        return  # another supervisor took over while we waited
    (RUN / "supervisor.pid").write_text(str(os.getpid()))
    supervisor = Supervisor()
    finished = False

    def teardown():
        nonlocal finished
        if not finished:
            finished = True
            supervisor.shutdown()
            SOCKET_PATH.unlink(missing_ok=True)
            (RUN / "supervisor.pid").unlink(missing_ok=True)

    def on_signal(signum, _frame):
        supervisor._log(f"signal {signum}: tearing down")
        sys.exit(128 + signum)  # runs the atexit teardown

    atexit.register(teardown)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    SOCKET_PATH.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    server.bind(str(SOCKET_PATH))
    os.umask(old_umask)
    server.listen(16)
    server.settimeout(0.5)
    supervisor._log(f"supervisor {os.getpid()} listening on {SOCKET_PATH}")
    while True:
        supervisor.poll()
        if supervisor.any_running():
            supervisor.idle_since = time.monotonic()
        elif time.monotonic() - supervisor.idle_since > IDLE_EXIT_SECONDS:
            supervisor._log("no hosts running: exiting")
            break
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(None)
            line = conn.makefile("r").readline()
            if not line:  # a client probing whether we are up
                continue
            request = json.loads(line)
            try:
                reply = {"ok": True} | supervisor.handle(request)
            except Exception as exc:  # the client shows it; the supervisor keeps serving
                supervisor._log(f"{request.get('op')} failed: {exc}")
                reply = {"ok": False, "error": str(exc)}
            supervisor.idle_since = time.monotonic()
            with contextlib.suppress(BrokenPipeError):
                conn.sendall((json.dumps(reply) + "\n").encode())
            if request.get("op") == "shutdown":
                break
    # New clients must not queue on a socket nobody will serve: they start a new supervisor, which waits
    # for our lock until this teardown is done.
    SOCKET_PATH.unlink(missing_ok=True)
    server.close()
    teardown()


# ---------------------------------------------------------------------------------------------------------
# Client side: library functions used by the CLI, tests/support/fleet.py and the molecule playbooks


def _connect(timeout=2.0):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(SOCKET_PATH))
        return conn
    except OSError:
        conn.close()
        return None


def _start_supervisor():
    """Start the supervisor detached: it forks once more and the intermediate process exits at once, so the
    supervisor never is a child (or a zombie) of the short-lived client that started it."""
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "supervisor.log", "ab") as log:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "_supervise"], stdin=subprocess.DEVNULL,
                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd="/", timeout=30)


def request(op, start=True, timeout=600.0, **fields):
    """Send one request to the supervisor (starting it if needed) and return its reply.

    A supervisor that is just exiting (idle) drops queued connections unread: those are retried.
    """
    if os.geteuid() != 0:
        raise FleetError("the test fleet needs root (network namespaces, bridge, nftables, mounts)")
    for attempt in range(3):
        conn = _connect()
        if conn is None:
            if not start:
                return None
            _start_supervisor()
            if not _wait_until(lambda: SOCKET_PATH.exists() and _probe(), 15.0, 0.05):
                raise FleetError(f"the fleet supervisor did not start; see {RUN / 'supervisor.log'}")
            continue
        try:
            with conn:
                conn.settimeout(timeout)
                conn.sendall((json.dumps({"op": op} | fields) + "\n").encode())
                line = conn.makefile("r").readline()
        except (ConnectionResetError, BrokenPipeError):
            line = ""
        if line:
            break
        time.sleep(0.2)
    else:
        raise FleetError(f"the fleet supervisor closed the connection; see {RUN / 'supervisor.log'}")
    reply = json.loads(line)
    if not reply.pop("ok"):
        raise FleetError(reply["error"])
    return reply


def _probe():
    conn = _connect(0.5)
    if conn is not None:
        conn.close()
    return conn is not None


def up(names=(), count=0, systemd=False, fresh=False, timeout=60.0, owner_pid=None, release=None):
    """Start hosts (``names`` as for the CLI: "1..3", "fl007", "web1") plus ``count`` on free indices.

    Returns the hosts, ssh-ready. A stopped host starts again with its state (and release); ``fresh`` wipes
    it first. New hosts run ``release`` (bullseye, bookworm, trixie; default bookworm).
    With ``owner_pid``, the supervisor removes the hosts when that process ends (a crashed test session).
    """
    if release is not None:
        base_rootfs(release)  # an unknown release fails here, before the supervisor starts
    _retire_idle_supervisor_of_other_code()
    requested = [{"name": name, "index": index} for name, index in parse_host_args([str(n) for n in names])]
    owner = process_identity(owner_pid) if owner_pid else None
    reply = request("up", hosts=requested, count=count, systemd=systemd, fresh=fresh, timeout=timeout, owner=owner,
                    release=release)
    hosts = [Host.from_json(h) for h in reply["hosts"]]
    if release and fresh and any(h.release != release for h in hosts):
        raise FleetError(f"the fleet supervisor {supervisor_pid()} runs other fleet code that ignored release {release} "
                         "(its hosts are running); retry when they have stopped")
    return hosts


def _retire_idle_supervisor_of_other_code():
    """Worktrees share one supervisor: one left idle by other fleet code (it lingers a few seconds) may not know
    what this client asks for (e.g. releases). With no host running, stop it so that ours starts."""
    state = status()
    if state and state.get("code_digest") != code_digest() and not any(h["running"] for h in state["hosts"]):
        pid = state["supervisor_pid"]
        request("shutdown", start=False, timeout=120)
        if not _wait_until(lambda: not process_running(pid), 10.0):
            raise FleetError(f"the idle fleet supervisor {pid} (other fleet code) did not exit; see {RUN / 'supervisor.log'}")


def up_mixed(releases, systemd=False, fresh=False, timeout=60.0, owner_pid=None):
    """One host on a free index per entry of ``releases`` (e.g. ``["bullseye", "bookworm", "trixie"]``)."""
    hosts = []
    for release in dict.fromkeys(releases):
        hosts += up(count=list(releases).count(release), systemd=systemd, fresh=fresh, timeout=timeout,
                    owner_pid=owner_pid, release=release)
    return sorted(hosts, key=lambda h: h.index)


def stop(names, owner_pid=None):
    """Stop hosts; their state (upper dirs) is kept for the next ``up``.

    With ``owner_pid``, hosts that another live process owns are left alone. Returns the hosts stopped.
    """
    owner = process_identity(owner_pid) if owner_pid else None
    reply = request("stop", start=False, names=list(names), owner=owner)
    return [Host.from_json(h) for h in reply["hosts"]] if reply else []


def remove(names, owner_pid=None):
    """Stop hosts and forget them (state deleted); ``owner_pid`` as for :func:`stop`."""
    owner = process_identity(owner_pid) if owner_pid else None
    reply = request("remove", start=False, names=list(names), owner=owner)
    return [Host.from_json(h) for h in reply["hosts"]] if reply else []


def status():
    """The supervisor's view (hosts, forwarding sysctls), or None when no supervisor runs."""
    return request("status", start=False)


def supervisor_pid():
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int((RUN / "supervisor.pid").read_text())
    return None


def down(force=False):
    """Stop everything and remove every fleet object, including leftovers of a crashed run (by name).

    Refuses while hosts owned by another live process (a running test session) are up, unless ``force``.
    """
    report = {"removed": []}
    state = status()
    busy = [h["name"] for h in (state or {}).get("hosts", [])
            if h["running"] and h["owner"] and h["owner"][0] != os.getpid() and _process_alive(*h["owner"])]
    if busy and not force:
        owners = sorted({str(h["owner"][0]) for h in state["hosts"] if h["name"] in busy})
        raise FleetError(f"hosts {' '.join(busy)} belong to running processes {' '.join(owners)} (test sessions); "
                         "they remove them when they end. Use --force to stop them anyway")
    pid = supervisor_pid()
    reply = request("shutdown", start=False, timeout=120)
    if reply:
        report |= reply
    if reply and pid and not _wait_until(lambda: not process_running(pid), 10.0):
        raise FleetError(f"fleet supervisor {pid} did not exit; see {RUN / 'supervisor.log'}")
    for ns in our_netns_list():  # leftovers of a crashed supervisor, found by our names
        for pid in _netns_pids(ns):
            _kill(pid, signal.SIGKILL)
        _wait_until(lambda: not _netns_pids(ns), 5.0)
        _run("ip", "link", "del", f"{ns}h", check=False)
        _run("ip", "netns", "del", ns, check=False)
        report["removed"].append(f"netns {ns}")
    for link in sorted(os.listdir("/sys/class/net")):
        if NETNS_RE.match(link[:-1]) and link.endswith("h"):
            _run("ip", "link", "del", link, check=False)
            report["removed"].append(f"link {link}")
    if _link_exists(BRIDGE):
        _run("ip", "link", "del", BRIDGE, check=False)
        report["removed"].append(f"bridge {BRIDGE}")
    if _run("nft", "list", "table", "inet", GUARD_TABLE, check=False).returncode == 0:
        _run("nft", "delete", "table", "inet", GUARD_TABLE)
        report["removed"].append(f"nft table inet {GUARD_TABLE}")
    shutil.rmtree(RUN, ignore_errors=True)
    return report


def leftovers():
    """Fleet objects that exist right now (all empty after a clean teardown)."""
    return {
        "netns": our_netns_list(),
        "links": sorted(l for l in os.listdir("/sys/class/net") if l == BRIDGE or (l.endswith("h") and NETNS_RE.match(l[:-1]))),
        "guard": _run("nft", "list", "table", "inet", GUARD_TABLE, check=False).returncode == 0,
        "supervisor": supervisor_pid() if supervisor_pid() and process_running(supervisor_pid()) else None,
    }


# ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description="Local test fleet of network-namespace SSH hosts.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start hosts: index ranges (1..5), flNNN names or other names")
    p_up.add_argument("hosts", nargs="*")
    p_up.add_argument("--count", type=int, default=0, help="also start this many hosts on free indices")
    p_up.add_argument("--systemd", action="store_true", help="boot systemd with systemd-nspawn --boot")
    p_up.add_argument("--fresh", action="store_true", help="discard the hosts' saved state first")
    p_up.add_argument("--release", choices=list(RELEASES), help="Debian release of new hosts (default bookworm)")
    p_up.add_argument("--timeout", type=float, default=60.0)
    p_up.add_argument("--json", action="store_true", help="print the hosts as JSON")
    p_up.add_argument("--instance-config", metavar="PATH", help="add the hosts to molecule's instance config file")
    for name, help_text in (("stop", "stop hosts, keeping their state"), ("remove", "stop hosts and delete their state")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("names", nargs="+")
    sub.add_parser("status", help="show hosts and the forwarding sysctls")
    p_down = sub.add_parser("down", help="stop everything and remove all fleet objects, also after a crash")
    p_down.add_argument("--force", action="store_true", help="also stop hosts that running test sessions own")
    sub.add_parser("_supervise", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        if args.command == "_supervise":
            if os.fork() > 0:
                os._exit(0)
            _supervise()
        elif args.command == "up":
            if not args.hosts and not args.count:
                parser.error("up needs host names/ranges or --count")
            hosts = up(args.hosts, args.count, args.systemd, args.fresh, args.timeout, release=args.release)
            if args.instance_config:
                write_molecule_instance_config(hosts, args.instance_config)
            if args.json:
                print(json.dumps([h.to_json() for h in hosts]))
            else:
                for h in hosts:
                    print(f"{h.name}\t{h.address}\t{h.release}\t{'systemd' if h.systemd else 'sshd'}\tpid {h.pid}")
                print(f"inventory: {RUN / 'inventory.yml'}\nssh_config: {RUN / 'ssh_config'}")
        elif args.command in ("stop", "remove"):
            for h in (stop if args.command == "stop" else remove)(args.names):
                print(f"{args.command}: {h.name}")
        elif args.command == "status":
            state = status()
            if state is None:
                print("no fleet supervisor running")
                for kind, found in leftovers().items():
                    if found:
                        print(f"leftover {kind}: {found}")
            else:
                print(f"supervisor pid {state['supervisor_pid']}; forwarding {state['forwarding_now']}")
                if state.get("code_digest") != code_digest():
                    print("note: the supervisor runs an older netns_fleet.py/host_init.sh; "
                          "it picks up the new code when it restarts (it exits when no host runs)")
                for h in state["hosts"]:
                    print(f"{h['name']}\t{h['address']}\t{h.get('release', DEFAULT_RELEASE)}\t"
                      f"{'running' if h['running'] else 'stopped'}\t"
                          f"{'systemd' if h['systemd'] else 'sshd'}\tpid {h['pid']}")
        elif args.command == "down":
            report = down(args.force)
            for item in report["removed"]:
                print(f"removed leftover {item}")
            if report.get("forwarding_at_setup") and report["forwarding_at_setup"] != report["forwarding_now"]:
                print(f"WARNING: forwarding sysctls changed: {report['forwarding_at_setup']} -> "
                      f"{report['forwarding_now']}", file=sys.stderr)
                return 1
            print("fleet down")
    except FleetError as exc:
        print(f"netns_fleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
