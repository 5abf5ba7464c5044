#!/usr/bin/env python3
"""Latency of the bundled helper's `credential-process`, cold and cached, against a reference in the same run.

Starts its own stand on loopback (moto + ra_local, a SoftHSM token with an EC P-256 key, a PEM file key, both
with certificates from a test CA), then times N runs of each command and prints medians and ratios.

    .venv/bin/python bench/credential_process.py [--runs 20] [--reference /path/to/aws_signing_helper ...]

A cold run's wall time includes the local endpoint's answer (ra_local checks the signature and asks moto for
the role and the credentials, on the same busy machine). The row "endpoint answer" times the same request
sent by the helper's own client code inside this process (no interpreter start, no imports, no signing), and
the endpoint processes' CPU per request, so the part of a cold run that is the helper's own work can be read
off. The https rows run the helper against a second ra_local with TLS, trusting a copy of the system store's
hashed directory plus the test CA (SSL_CERT_DIR), as a Debian host trusts AWS's endpoint: they show what TLS costs.

A reference is any binary taking aws_signing_helper's flags (AWS's own binary). It gets the same arguments,
with the PIN as ?pin-value= (AWS's helper cannot read pin-source). Goal (issue 12): cold <= 5x and cached
<= 1.8x the interpreter's bare start (`python -c pass`), in wall and CPU time (cold <= 3x AWS's binary, cached <= 1x).

The helper runs as hosts run it: installed the way the role signing_helper installs it (the prebuilt runtime
archive of module python_runtime, made from the test wheelhouse .work/wheelhouse for this interpreter's version
with the helper's precompiled module_utils, kept in .work/runtime-cache and unpacked; bin/ with the ``-I -S``
shebang), started through its shebang.
"""
import argparse
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ansible import COLLECTIONS, ensure_collection_link  # noqa: E402

ensure_collection_link()
sys.path.insert(0, str(COLLECTIONS))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _pkcs11  # noqa: E402
from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509  # noqa: E402
from tests.support.aws import provision, start_moto, start_ra_local, write_tls_files  # noqa: E402
from tests.support.ca import issue_client_cert, make_file_ca  # noqa: E402
from tests.support.tokens import make_softhsm_token  # noqa: E402

ROLE = REPO / "roles" / "signing_helper"


def unpack_runtime(prefix: Path) -> Path:
    """The runtime archive for this interpreter, built (once) from the test wheelhouse and unpacked under prefix."""
    import platform
    import tarfile

    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _runtime

    version = "%d.%d" % sys.version_info[:2]
    modules = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__signing_helper_modules"]
    built = _runtime.build(version, platform.machine(), platform.libc_ver()[1], str(REPO / ".work" / "runtime-cache"),
                           wheelhouses=[str(REPO / ".work" / "wheelhouse")],
                           modules=[str(REPO / "plugins" / "module_utils" / name) for name in modules])
    with tarfile.open(built["path"]) as archive:
        archive.extractall(prefix / "runtime")
    return prefix / "runtime" / built["key"] / f"python{version}"


def install_helper(prefix: Path, runtime: Path) -> Path:
    """The helper's command as the role writes it on a host."""
    command = prefix / "bin" / "rolesanywhere-credential-helper"
    command.parent.mkdir()
    source = (ROLE / "files" / "rolesanywhere-credential-helper").read_text().split("\n", 1)[1]
    source = source.replace('\nRUNTIME = ""\n', f"\nRUNTIME = {str(runtime)!r}\n")
    command.write_text(f"#!{sys.executable} -IS\n{source}")
    command.chmod(0o755)
    return command


def system_store_with(ca_file: Path, directory: Path) -> Path:
    """A hashed certificate directory like Debian's /etc/ssl/certs (its links) plus the test CA under its hash."""
    directory.mkdir()
    system = Path(ssl.get_default_verify_paths().openssl_capath)
    for entry in system.iterdir():
        (directory / entry.name).symlink_to(entry.resolve())
    subject_hash = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(ca_file)], check=True,
                                  capture_output=True, text=True).stdout.strip()
    suffix = 0
    while (directory / f"{subject_hash}.{suffix}").exists():  # another certificate with the same subject hash
        suffix += 1
    (directory / f"{subject_hash}.{suffix}").symlink_to(ca_file)
    return directory


def timed_ms(argv, env):
    """Wall time and CPU time (user + sys of the child) of one run, in ms; CPU is steadier on a busy machine."""
    if callable(argv):
        return argv()
    if isinstance(argv, tuple):
        env, argv = argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def process_cpu_ms(pids):
    """User + system CPU of processes (all their threads, ended ones included), in ms (10 ms ticks)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")


class EndpointAnswer:
    """The endpoint's own time for the helper's request: signed beforehand (not timed), then sent by the signer's
    client code in this process. CPU is the endpoint processes' (ra_local, moto), whose ticks are coarse: it is
    reported as the mean over all runs, not the median."""

    def __init__(self, ra, key, certificate, arns):
        self.ra, self.key, self.certificate, self.arns = ra, key, certificate, arns
        self.walls, self.cpus = [], []

    def __call__(self):
        url = _sigv4x509.Url(self.ra.url)
        signed = _sigv4x509.sign_request(
            self.key, self.certificate, host=url.netloc, region=self.ra.region, body=_sigv4x509.request_body(),
            trust_anchor_arn=self.arns["trust_anchor_arn"], profile_arn=self.arns["profile_arn"],
            role_arn=self.arns["role_arn"])
        headers = dict(signed.headers, **{"User-Agent": _sigv4x509.USER_AGENT})
        pids = (self.ra.proc.pid, self.ra.moto.proc.pid)
        cpu = process_cpu_ms(pids)
        start = time.perf_counter()
        status, _headers, _body = _sigv4x509._post(url, "/sessions?" + signed.query, signed.body, headers,
                                                   "Roles Anywhere", None, True, 30, False)
        wall = (time.perf_counter() - start) * 1000
        cpu = process_cpu_ms(pids) - cpu
        if status != 201:
            raise SystemExit(f"the endpoint answered {status} to the bench's own request")
        self.walls.append(wall)
        self.cpus.append(cpu)
        return wall, statistics.mean(self.cpus)


def medians_ms(rows, env, runs):
    """Median wall and CPU per row; the rows take turns, so a burst of load on the machine hits them all alike."""
    samples = {label: [] for label, _argv in rows}
    for _run in range(runs):
        for label, argv in rows:
            samples[label].append(timed_ms(argv, env))
    return {label: (statistics.median(wall for wall, _cpu in values), statistics.median(cpu for _wall, cpu in values))
            for label, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--reference", action="append", default=[], help="a binary with aws_signing_helper's flags")
    opts = parser.parse_args()
    if opts.runs < 20:
        parser.error("--runs must be at least 20")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        tmp = Path(tmp)
        moto = start_moto(log_path=tmp / "moto.log")
        ra = ra_tls = None
        try:
            ra = start_ra_local(moto, tmp / "ra")
            token = make_softhsm_token(tmp / "token")
            with _pkcs11.open_token_session(token.spec(), rw=True) as session:
                public_key = _pkcs11.public_key_of(_pkcs11.generate_keypair(session, "bench", "ec", curve="secp256r1"))
            ca = make_file_ca(tmp / "ca")
            subject = {"O": "bench", "CN": "bench.fleet.test"}
            issue_client_cert(ca, public_key, subject=subject, path=tmp / "token.pem")
            file_key = ec.generate_private_key(ec.SECP256R1())
            (tmp / "file.key").write_bytes(file_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            issue_client_cert(ca, file_key.public_key(), subject=subject, path=tmp / "file.pem")
            pin_file = tmp / "pin"
            pin_file.write_text(token.pin)
            os.chmod(pin_file, 0o600)
            arns = provision(ra, ca.pem())

            token_uri = f"pkcs11:token={token.token_label};object=bench"

            def args(kind, endpoint, anchors, pin=f"pin-source=file:{pin_file}"):
                """credential-process arguments for a key kind against an endpoint and its provisioned ARNs."""
                key = (["--certificate", str(tmp / "token.pem"), "--pkcs11-lib", token.module_path,
                        "--private-key", f"{token_uri}?{pin}"] if kind == "token" else
                       ["--certificate", str(tmp / "file.pem"), "--private-key", str(tmp / "file.key")])
                return ["credential-process"] + key + [
                    "--trust-anchor-arn", anchors["trust_anchor_arn"], "--profile-arn", anchors["profile_arn"],
                    "--role-arn", anchors["role_arn"], "--endpoint", endpoint.url]

            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "SSL_CERT_"))}
            env.update(token.env)
            tls_files = write_tls_files(tmp / "tls")
            ra_tls = start_ra_local(moto, tmp / "ra-tls", tls=tls_files)
            arns_tls = provision(ra_tls, ca.pem())
            tls_env = dict(env, SSL_CERT_DIR=str(system_store_with(Path(tls_files[2]), tmp / "certs")))
            helper = [str(install_helper(tmp / "helper", unpack_runtime(tmp / "helper")))]
            cache = ["--cache-dir", str(tmp / "cache")]
            for kind in ("token", "file"):
                subprocess.run(helper + args(kind, ra, arns) + cache, env=env, check=True, stdout=subprocess.DEVNULL)

            rows = [
                ("python -c pass (interpreter start)", [sys.executable, "-c", "pass"]),
                ("bundled, SoftHSM EC key, cold", helper + args("token", ra, arns)),
                ("bundled, SoftHSM EC key, cached", helper + args("token", ra, arns) + cache),
                ("bundled, PEM key, cold", helper + args("file", ra, arns)),
                ("bundled, PEM key, cached", helper + args("file", ra, arns) + cache),
                ("endpoint answer (same request, in-process client)",
                 EndpointAnswer(ra, file_key, _sigv4x509.load_certificate_file(str(tmp / "file.pem")), arns)),
                ("bundled, SoftHSM EC key, cold, https", (tls_env, helper + args("token", ra_tls, arns_tls))),
                ("bundled, PEM key, cold, https", (tls_env, helper + args("file", ra_tls, arns_tls))),
            ]
            for reference in opts.reference:
                rows.append((f"reference {reference}, SoftHSM EC key",
                             [reference] + args("token", ra, arns, pin=f"pin-value={token.pin}")))
                rows.append((f"reference {reference}, PEM key", [reference] + args("file", ra, arns)))
            results = medians_ms(rows, env, opts.runs)
        finally:
            for endpoint in (ra, ra_tls):
                if endpoint:
                    endpoint.stop()
            moto.stop()

    print(f"credential-process latency, median of {opts.runs} runs (ms); load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print(f"  {'':<60} {'wall':>8} {'cpu':>8}")
    for label, (wall, cpu) in results.items():
        print(f"  {label:<60} {wall:8.1f} {cpu:8.1f}")
    print("  (endpoint answer: cpu is ra_local's and moto's, mean per request)")
    baselines = [(label, value) for label, value in results.items() if label.startswith("reference")]
    if not baselines:
        baselines = [("python -c pass (interpreter start)", results["python -c pass (interpreter start)"])]
    endpoint_wall = results["endpoint answer (same request, in-process client)"][0]
    print("ratios (bundled / baseline), wall and cpu; for cold http runs also the wall ratio without the endpoint's answer")
    for kind in ("SoftHSM EC key", "PEM key"):
        for base_label, base in baselines:
            if base_label.startswith("reference") and not base_label.endswith(kind):
                continue
            for mode in ("cold", "cached", "cold, https"):
                wall, cpu = results[f"bundled, {kind}, {mode}"]
                line = f"  {kind:<15} {mode:<12} vs {base_label:<45} {wall / base[0]:6.2f}x {cpu / max(base[1], 0.1):6.2f}x"
                if mode == "cold":  # the endpoint row answers over http, like these
                    line += f"   without endpoint {(wall - endpoint_wall) / base[0]:6.2f}x"
                print(line)


if __name__ == "__main__":
    main()
