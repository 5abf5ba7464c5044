"""A mixed fleet: hosts of every Debian release the fleet can run plus a TPM host, as real on-prem fleets are.

Used by ``make demo`` (tests/demo.py), the mixed-fleet tests (tests/integration/mixed) and bench/fleet.py --mix.
"""
import json
import shlex
import subprocess

from tests.fleet import netns_fleet

# One SoftHSM2 host per release, then the TPM host (swtpm entered Debian with bookworm: no TPM on bullseye).
SOFTHSM_RELEASES = ("bullseye", "bookworm", "trixie")
TPM_RELEASE = "bookworm"
TPM_SOCKET = "/run/swtpm/dbus.sock"
# Where the software TPM's tpm2-abrmd listens, for the token role and the tools (start_swtpm.sh).
TPM_HOST_VARS = {
    "enrol_token_type": "tpm2",
    "enrol_token_tpm2_tcti": "tabrmd:bus_type=session",
    "enrol_token_env": {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={TPM_SOCKET}"},
}
TPM_TOOLS_ENV = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={TPM_SOCKET}", "TPM2TOOLS_TCTI": "tabrmd:bus_type=session"}
START_SWTPM = netns_fleet.REPO / "extensions" / "molecule" / "enrol_shared" / "start_swtpm.sh"


def ssh(host, command, check=True, timeout=120):
    """Run a shell command on a fleet host; returns the CompletedProcess."""
    proc = subprocess.run(["ssh", *netns_fleet.ssh_options(), f"root@{host.address}", command],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"on {host.name}: {command!r} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_swtpm(host):
    """swtpm + a private D-Bus bus + tpm2-abrmd inside the host's namespaces (they end with the host)."""
    with START_SWTPM.open("rb") as script:
        proc = subprocess.run(["ssh", *netns_fleet.ssh_options(), f"root@{host.address}", "sh -s"],
                              stdin=script, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"swtpm did not start on {host.name}: {proc.stderr.decode(errors='replace')}")


def tpm_tool(host, argv, check=True):
    """A tpm2-tools command on the host's software TPM (through its tpm2-abrmd)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in TPM_TOOLS_ENV.items())
    return ssh(host, f"{env} {shlex.join(argv)}", check=check)


def start(owner_pid, softhsm_releases=SOFTHSM_RELEASES, tpm_hosts=1, timeout=60.0):
    """Start the hosts (fresh) and the TPM hosts' swtpm. Returns (hosts, tpm_hosts), SoftHSM hosts first."""
    softhsm = netns_fleet.up_mixed(softhsm_releases, fresh=True, owner_pid=owner_pid, timeout=timeout)
    tpm = netns_fleet.up(count=tpm_hosts, fresh=True, owner_pid=owner_pid, timeout=timeout,
                         release=TPM_RELEASE) if tpm_hosts else []
    for host in tpm:
        start_swtpm(host)
    return softhsm + tpm, tpm


def write_inventory(hosts, tpm_hosts, path, extra_vars):
    """netns_fleet.write_inventory plus each TPM host's token variables."""
    inventory = netns_fleet.write_inventory(hosts, path, extra_vars=extra_vars)
    data = json.loads(inventory.read_text())
    for host in tpm_hosts:
        data["all"]["children"]["fleet"]["hosts"][host.name].update(TPM_HOST_VARS)
    inventory.write_text(json.dumps(data, indent=2) + "\n")
    return inventory


SUMMARY = r"""
. /etc/os-release
echo "$VERSION_ID"
python3 -c 'import platform; print(platform.python_version())'
getconf GNU_LIBC_VERSION
sed -n 's/^credential_process *= *//p' {config} | head -n 1
"""


def summary(host, user_home="/root"):
    """What the host is and what enrolment gave it: release, Python, glibc, the credential_process command."""
    out = ssh(host, SUMMARY.format(config=shlex.quote(f"{user_home}/.aws/config"))).stdout.splitlines() + [""] * 4
    version_id, python, libc, credential_process = out[:4]
    command = shlex.split(credential_process)[0] if credential_process else ""
    impl = "aws" if command.endswith("aws_signing_helper") else ("python" if command else "none")
    return {"debian": f"Debian {version_id}", "python": python, "glibc": libc.split()[-1] if libc else "",
            "impl": impl, "credential_process": credential_process}
