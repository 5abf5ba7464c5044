#!/usr/bin/env python3
"""Latency of the bundled helper's `credential-process`, cold and cached, against a reference in the same run.

Starts its own stand on loopback (moto + ra_local, a SoftHSM token with an EC P-256 key, a PEM file key, both
with certificates from a test CA), then times N runs of each command and prints medians and ratios.

    .venv/bin/python bench/credential_process.py [--runs 20] [--reference /path/to/aws_signing_helper ...]

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
from tests.support.aws import provision, start_moto, start_ra_local  # noqa: E402
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


def timed_ms(argv, env):
    """Wall time and CPU time (user + sys of the child) of one run, in ms; CPU is steadier on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


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

    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        tmp = Path(tmp)
        moto = start_moto(log_path=tmp / "moto.log")
        ra = None
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

            common = ["--trust-anchor-arn", arns["trust_anchor_arn"], "--profile-arn", arns["profile_arn"],
                      "--role-arn", arns["role_arn"], "--endpoint", ra.url]
            token_uri = f"pkcs11:token={token.token_label};object=bench"
            token_args = ["credential-process", "--certificate", str(tmp / "token.pem"),
                          "--pkcs11-lib", token.module_path] + common
            file_args = ["credential-process", "--certificate", str(tmp / "file.pem"),
                         "--private-key", str(tmp / "file.key")] + common
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
            env.update(token.env)
            helper = [str(install_helper(tmp / "helper", unpack_runtime(tmp / "helper")))]
            cache = ["--cache-dir", str(tmp / "cache")]
            subprocess.run(helper + token_args + ["--private-key", f"{token_uri}?pin-source=file:{pin_file}"] + cache,
                           env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(helper + file_args + cache, env=env, check=True, stdout=subprocess.DEVNULL)

            rows = [
                ("python -c pass (interpreter start)", [sys.executable, "-c", "pass"]),
                ("bundled, SoftHSM EC key, cold",
                 helper + token_args + ["--private-key", f"{token_uri}?pin-source=file:{pin_file}"]),
                ("bundled, SoftHSM EC key, cached",
                 helper + token_args + ["--private-key", f"{token_uri}?pin-source=file:{pin_file}"] + cache),
                ("bundled, PEM key, cold", helper + file_args),
                ("bundled, PEM key, cached", helper + file_args + cache),
            ]
            for reference in opts.reference:
                rows.append((f"reference {reference}, SoftHSM EC key",
                             [reference] + token_args + ["--private-key", f"{token_uri}?pin-value={token.pin}"]))
                rows.append((f"reference {reference}, PEM key", [reference] + file_args))
            results = medians_ms(rows, env, opts.runs)
        finally:
            if ra:
                ra.stop()
            moto.stop()

    print(f"credential-process latency, median of {opts.runs} runs (ms); load average {os.getloadavg()[0]:.1f}")
    print(f"  {'':<60} {'wall':>8} {'cpu':>8}")
    for label, (wall, cpu) in results.items():
        print(f"  {label:<60} {wall:8.1f} {cpu:8.1f}")
    baselines = [(label, value) for label, value in results.items() if label.startswith("reference")]
    if not baselines:
        baselines = [("python -c pass (interpreter start)", results["python -c pass (interpreter start)"])]
    print("ratios (bundled / baseline), wall and cpu")
    for kind in ("SoftHSM EC key", "PEM key"):
        for base_label, base in baselines:
            if base_label.startswith("reference") and not base_label.endswith(kind):
                continue
            for mode in ("cold", "cached"):
                wall, cpu = results[f"bundled, {kind}, {mode}"]
                print(f"  {kind:<15} {mode:<7} vs {base_label:<45} {wall / base[0]:6.2f}x {cpu / max(base[1], 0.1):6.2f}x")


if __name__ == "__main__":
    main()
