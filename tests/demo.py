"""`make demo`: the main job on a local mixed fleet, start to finish, then everything torn down.

Network-namespace SSH hosts (tests/fleet) of Debian 11, 12 and 13 with SoftHSM2 and a Debian 12 host with a
software TPM (tests/fleet/mixed.py), a local site on the fleet bridge (moto + aws_gate + ra_local, the own CA
from role ``ca``, the AWS side from ``aws_setup.yml``), then one ``enrol.yml`` run with
``signing_helper_impl: auto``; per host its release, Python, token and the helper auto chose, the assumed-role
ARN obtained through the wired credential_process and the seed's S3 outcomes; then ``report.yml``.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fleet import mixed, netns_fleet
from tests.site import ALLOWED_BUCKET, OTHER_BUCKET, LocalSite
from tests.support.ansible import REPO, ansible_env

AUTO_CHOICE = re.compile(r'^ok: \[(\S+)\] => \{\s*"msg": "signing helper auto -> (\w+) \((.*)\)"', re.M)


def banner(text):
    print(f"\n=== {text}", flush=True)


def playbook(name, inventory, extra_vars=None):
    """Run a playbook, its output shown as it comes; returns the output."""
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / name)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    lines = []
    with subprocess.Popen(cmd, env=ansible_env({"PYTHONUNBUFFERED": "1"}), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return "".join(lines)


def on_host(host, argv):
    proc = subprocess.run(["ssh", *netns_fleet.ssh_options(), f"root@{host.address}", shlex.join(argv)],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def seed_outcomes(host, gate_url, inside_source_range):
    aws = ["runuser", "-u", "root", "--", "aws", "--profile", "ra", "--endpoint-url", gate_url]
    checks = [
        ("sts get-caller-identity", aws + ["sts", "get-caller-identity", "--query", "Arn", "--output", "text"], True),
        ("s3 ls", aws + ["s3", "ls"], inside_source_range),
        (f"s3api put-object {ALLOWED_BUCKET}", aws + ["s3api", "put-object", "--bucket", ALLOWED_BUCKET, "--key", "x"], False),
        (f"s3api list-objects {OTHER_BUCKET}", aws + ["s3api", "list-objects-v2", "--bucket", OTHER_BUCKET], False),
    ]
    for label, argv, expect_ok in checks:
        rc, out = on_host(host, argv)
        verdict = "allowed" if rc == 0 else "denied"
        expected = "allowed" if expect_ok else "denied"
        detail = out.splitlines()[-1] if out else ""
        print(f"  {host.name:10} {label:36} {verdict:8} (expected {expected}) {detail[:90]}")
        yield verdict == expected


def main():
    if os.geteuid() != 0:
        sys.exit("make demo needs root (network namespaces, a bridge, nftables)")
    workdir = Path(tempfile.mkdtemp(prefix="rolesanywhere-demo-"))
    ok = True
    banner(f"Starting a mixed local fleet: SoftHSM2 hosts on {', '.join(mixed.SOFTHSM_RELEASES)}, "
           f"a {mixed.TPM_RELEASE} host with a software TPM")
    hosts, tpm_hosts = mixed.start(os.getpid())
    try:
        for host in hosts:
            print(f"  {host.name} {host.address} {host.release}{' (swtpm + tpm2-abrmd)' if host in tpm_hosts else ''}")
        # The seed's inline deny allows one source range: the first hosts are inside it, the last one is not.
        inside = [f"{h.address}/32" for h in hosts[:-1]]
        banner("Local site: moto + aws_gate + ra_local, own CA (role ca), AWS side (aws_setup.yml)")
        with LocalSite(workdir / "site", allowed_source_ips=inside) as site:
            print(f"  Roles Anywhere endpoint {site.ra.url}; STS/S3 {site.gate.url}")
            print(f"  trust anchor {site.arns['trust_anchor_arn']}\n  profile      {site.arns['profile_arn']}\n"
                  f"  role         {site.arns['role_arn']}")
            # auto picks per host; this offline fleet has no copy of AWS's binary to install (no download source).
            inventory = mixed.write_inventory(hosts, tpm_hosts, workdir / "inventory.yml", site.enrol_vars(
                enrol_helper_impl="auto", signing_helper_aws_url_template=""))
            banner("enrol.yml (one run, every host)")
            choices = {name: (impl, why) for name, impl, why in AUTO_CHOICE.findall(playbook("enrol.yml", inventory))}
            banner("The fleet: release, Python, token and the signing helper auto chose")
            for host in hosts:
                facts = mixed.summary(host)
                token = "tpm2" if host in tpm_hosts else "softhsm2"
                impl, why = choices.get(host.name, ("?", "no choice shown"))
                ok = ok and impl == facts["impl"]
                print(f"  {host.name:8} {facts['debian']:10} Python {facts['python']:8} token {token:9} "
                      f"helper {facts['impl']} (auto: {why})")
            banner("Credentials through each host's credential_process (profile ra), and the seed's policy outcomes")
            for host in hosts:
                inside_range = host is not hosts[-1]
                if not inside_range:
                    print(f"  {host.name:10} is outside the allowed source range: the inline deny refuses all of S3")
                ok = all(seed_outcomes(host, site.gate.url, inside_range)) and ok
            banner("report.yml")
            playbook("report.yml", inventory, {"report_dir": str(workdir / "report")})
            print(f"  report files: {workdir / 'report'}/report.json, report.csv")
            metrics = workdir / "report" / f"{hosts[0].name}-rolesanywhere.prom"
            metrics.write_text(on_host(hosts[0], ["cat", "/var/lib/prometheus/node-exporter/rolesanywhere.prom"])[1] + "\n")
            print(f"  report page:  {workdir / 'report' / 'report.html'}")
            print(f"  host metrics: {metrics} (the node_exporter textfile of {hosts[0].name})")
    finally:
        banner("Tearing down the fleet and the site")
        netns_fleet.remove([h.name for h in hosts])
    print("\ndemo finished" + ("" if ok else " with unexpected outcomes"), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
