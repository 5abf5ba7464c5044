"""A mixed fleet in one rollout: Debian 11, 12 and 13 hosts with SoftHSM2 and a Debian 12 host with a software TPM,
enrolled by one enrol.yml run; each proves credentials through its own credential_process, rotates, and
signing_helper_impl auto decides per host from its architecture and C library."""
import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.fleet import mixed
from tests.support.ansible import REPO, recap, run_playbook

pytestmark = [pytest.mark.fleet, pytest.mark.tpm, pytest.mark.slow]

AUTO_CHOICE = re.compile(r'^ok: \[(\S+)\] => \{\s*"msg": "signing helper (\w+) -> (\w+) \((.*)\)"', re.M)
EXPECTED = {"bullseye": ("Debian 11", "3.9.", "2.31"), "bookworm": ("Debian 12", "3.11.", "2.36"),
            "trixie": ("Debian 13", "3.13.", "2.41")}
STATE = "/etc/ansible/facts.d/rolesanywhere.fact"
SIGNING_HELPER = Path(__file__).parent / "playbooks" / "signing_helper.yml"


def identity_arn(fleet, host):
    proc = mixed.ssh(host, f"aws sts get-caller-identity --profile ra --endpoint-url {fleet.site.gate.url} --output json",
                     check=False)
    assert proc.returncode == 0, f"{host.name} ({host.release}) gets no credentials: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)["Arn"]


def test_each_host_runs_its_release(mixed_fleet):
    for host in mixed_fleet.hosts:
        debian, python, glibc = EXPECTED[host.release]
        facts = mixed.summary(host)
        assert (facts["debian"], facts["glibc"]) == (debian, glibc), facts
        assert facts["python"].startswith(python), facts


def test_one_enrol_run_gives_every_release_and_the_tpm_host_credentials(mixed_fleet):
    out = mixed_fleet.enrolment.stdout
    results = recap(out)
    assert set(results) == {h.name for h in mixed_fleet.hosts}, out[-4000:]
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in results.values()), out[-8000:]
    choices = {name: (impl, selected, why) for name, impl, selected, why in AUTO_CHOICE.findall(out)}
    bullseye = mixed_fleet.by_release("bullseye").name
    # auto on Debian 11: glibc 2.31 cannot run AWS's binary, whatever its source
    assert choices[bullseye][:2] == ("auto", "python")
    assert "glibc 2.31 is older than the glibc 2.34 aws_signing_helper" in choices[bullseye][2]
    for host in mixed_fleet.hosts:
        if host.name != bullseye:  # this offline fleet has no copy of AWS's binary to install
            assert choices[host.name][:2] == ("auto", "python") and "no source for aws_signing_helper" in choices[host.name][2]
        facts = mixed.summary(host)
        assert facts["impl"] == "python", facts  # the bundled helper, with the host's own Python
        assert ":assumed-role/site-rolesanywhere/" in identity_arn(mixed_fleet, host)
        state = json.loads(mixed.ssh(host, f"cat {STATE}").stdout)
        assert state["fingerprint"] and state["serial"]


def test_tpm_key_is_not_extractable_and_a_wrong_pin_costs_one_lockout_count(mixed_fleet, tmp_path):
    (host,) = mixed_fleet.tpm_hosts
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**mixed.TPM_TOOLS_ENV, "TPM2_PKCS11_STORE": "/var/lib/tpm2-pkcs11",
                                                        "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
                                                        "TPM2_PKCS11_LOG_LEVEL": "0"}.items())
    objects = mixed.ssh(host, f"{env} pkcs11-tool --module /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so "
                              "--token-label rolesanywhere --login --pin \"$(cat /etc/rolesanywhere-fleet/token.pin)\" "
                              "-O --type privkey").stdout
    assert "label:      rolesanywhere" in objects and "never extractable" in objects, objects
    assert "extractable" not in objects.replace("never extractable", ""), objects

    def lockout_counter():
        out = mixed.tpm_tool(host, ["tpm2_getcap", "properties-variable"]).stdout
        return int(re.search(r"TPM2_PT_LOCKOUT_COUNTER:\s*(0x[0-9a-fA-F]+|\d+)", out).group(1), 0)

    # The host's own credential_process, with a wrong PIN in a file of its own.
    credential_process = mixed.summary(host)["credential_process"]
    argv = shlex.split(credential_process)
    key = argv.index("--private-key") + 1
    assert "pin-source=file:" in argv[key], argv
    argv[key] = re.sub(r"pin-source=file:[^&]*", "pin-source=file:/root/wrong.pin", argv[key])
    mixed.ssh(host, "umask 077; echo 999999 > /root/wrong.pin")
    before = lockout_counter()
    proc = mixed.ssh(host, shlex.join(argv), check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "rejected" in proc.stderr and "not retried" in proc.stderr, proc.stderr
    assert lockout_counter() == before + 1
    mixed.tpm_tool(host, ["tpm2_dictionarylockout", "--clear-lockout"])
    assert ":assumed-role/" in identity_arn(mixed_fleet, host)  # the right PIN still works


def test_forced_rotation_on_every_release_and_the_tpm_host(mixed_fleet):
    before = {h.name: json.loads(mixed.ssh(h, f"cat {STATE}").stdout)["serial"] for h in mixed_fleet.hosts}
    proc = run_playbook(REPO / "playbooks" / "rotate.yml", inventory=str(mixed_fleet.inventory),
                        extra_vars={"rotate_force": True, "rotate_lock_ttl": 3, "rotate_lock_wait": 60}, check=False)
    results = recap(proc.stdout)
    assert set(results) == {h.name for h in mixed_fleet.hosts}
    assert all(r["failed"] == 0 and r["changed"] > 0 for r in results.values()), proc.stdout[-8000:]
    for host in mixed_fleet.hosts:
        state = json.loads(mixed.ssh(host, f"cat {STATE}").stdout)
        assert state["serial"] != before[host.name] and state["rotation_state"] == "renewed", (host.release, state)
        assert ":assumed-role/" in identity_arn(mixed_fleet, host)


STAND_IN = "#include <stdio.h>\nint main(void) { puts(\"1.5.0\"); return 0; }\n"


def stand_in_release(tmp_path):
    """A binary built here (glibc 2.36) stands in for AWS's: like the pinned release it needs GLIBC_2.34."""
    source = tmp_path / "stand_in.c"
    source.write_text(STAND_IN)
    binary = tmp_path / "aws_signing_helper"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    needs = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True).stdout
    newest = max(re.findall(r"GLIBC_([\d.]+)", needs), key=lambda v: tuple(map(int, v.split("."))))
    assert newest == "2.34", needs
    return binary, hashlib.sha256(binary.read_bytes()).hexdigest()


def test_auto_picks_per_host_and_aws_names_glibc_where_it_cannot_run(mixed_fleet, tmp_path):
    binary, sha = stand_in_release(tmp_path)
    softhsm = [h for h in mixed_fleet.hosts if h not in mixed_fleet.tpm_hosts]
    common = {"signing_helper_prefix": "/opt/ra-auto", "signing_helper_bin_dir": "/opt/ra-auto/cmd",
              "signing_helper_aws_src": str(binary), "signing_helper_aws_sha256": sha,
              "signing_helper_wheelhouse": str(REPO / ".work" / "wheelhouse")}

    def apply(hosts, **variables):
        return run_playbook(SIGNING_HELPER, inventory=str(mixed_fleet.inventory), extra_vars={**common, **variables},
                            args=["--limit", ",".join(h.name for h in hosts)], check=False)

    auto = apply(softhsm, signing_helper_impl="auto")
    results = recap(auto.stdout)
    assert set(results) == {h.name for h in softhsm}, auto.stdout[-3000:] + auto.stderr[-3000:]
    assert all(r["failed"] == 0 for r in results.values()), auto.stdout[-6000:]
    choices = {match[0]: match[2:] for match in AUTO_CHOICE.findall(auto.stdout)}  # name: (selected, why)
    commands = {"aws": ("aws_signing_helper", "1.5.0"), "python": ("rolesanywhere-credential-helper", "0.1.0")}
    for host in softhsm:
        selected = "python" if host.release == "bullseye" else "aws"
        assert choices[host.name][0] == selected, (host.release, choices[host.name])
        assert f"glibc {EXPECTED[host.release][2]}" in choices[host.name][1]
        command, version = commands[selected]
        assert mixed.ssh(host, f"/opt/ra-auto/cmd/{command} version").stdout.strip() == version, host.release

    bullseye = mixed_fleet.by_release("bullseye")
    mixed.ssh(bullseye, "rm -f /opt/ra-auto/cmd/aws_signing_helper")
    # aws on Debian 11: refused before installing, naming the glibc it has and the one the release needs
    refused = apply([bullseye], signing_helper_impl="aws")
    assert recap(refused.stdout)[bullseye.name]["failed"] == 1
    assert "glibc 2.31 is older than the glibc 2.34 aws_signing_helper 1.5.0 needs" in refused.stdout
    assert mixed.ssh(bullseye, "test -e /opt/ra-auto/cmd/aws_signing_helper", check=False).returncode == 1
    # Without the declared minimum, the installed binary's own check fails, and says why.
    unchecked = apply([bullseye], signing_helper_impl="aws", signing_helper_aws_min_glibc="")
    assert recap(unchecked.stdout)[bullseye.name]["failed"] == 1
    assert "aws_signing_helper version failed" in unchecked.stdout
    assert "GLIBC_2.34' not found" in unchecked.stdout and "glibc 2.31" in unchecked.stdout, unchecked.stdout[-3000:]
