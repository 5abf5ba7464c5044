#!/usr/bin/env python
"""Wall time of the PKI pipeline's module runs: EC P-256 keygen (pkcs11_key) + CSR (pkcs11_csr) + issue (x509_issue).

Each module runs as a real process (tests/support/ansible.run_module), on a SoftHSM2 token and on swtpm +
tpm2-abrmd + tpm2-pkcs11; the CA key is an encrypted P-384 file, and once more a P-384 key on the same token.
Prints the median (min-max) of several runs per module, the ratio to a baseline measured in the same run
(ansible.builtin.ping run the same way: Python start-up plus Ansible's module boilerplate), and the issue's goal:
a module run on SoftHSM EC under 0.5 s wall.

    .venv/bin/python bench/pki_pipeline.py [--runs 7] [--no-tpm]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.ansible import ansible_env, run_module  # noqa: E402
from tests.support.ca import make_file_ca  # noqa: E402
from tests.support.tokens import SoftwareTPM, Token, TPM2_MODULE, _init_token_in_subprocess, make_softhsm_token  # noqa: E402

GOAL_SECONDS = 0.5


def timed_module(name, args):
    start = time.perf_counter()
    result = run_module(name, args)
    elapsed = time.perf_counter() - start
    if result.failed or result["rc"] != 0:
        raise RuntimeError(f"{name} failed: {result.get('msg')}\n{result['stderr'][-2000:]}")
    return elapsed


def timed_ping():
    """The baseline: ansible.builtin.ping as a process, with the same args-file convention as run_module."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": {}}, fh)
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ansible.modules.ping", fh.name], check=True, capture_output=True,
                       env=ansible_env(), timeout=60)
        return time.perf_counter() - start
    finally:
        os.unlink(fh.name)


def pipeline(token, workdir, runs):
    """Times per module over ``runs`` fresh key pairs on ``token``."""
    workdir.mkdir(parents=True, exist_ok=True)
    file_ca = make_file_ca(workdir / "file-ca")
    timed_module("pkcs11_key", token.module_args(label="bench-ca", key_type="ec", curve="secp384r1"))
    token_ca_path = workdir / "token-ca.pem"
    timed_module("x509_ca", dict(path=str(token_ca_path), key=token.module_args(label="bench-ca"),
                                 subject={"CN": "bench token CA"}))
    times = {name: [] for name in ("pkcs11_key", "pkcs11_csr", "x509_issue (file CA)", "x509_issue (token CA)")}
    for run in range(runs):
        label = f"bench-{run}"
        csr_path = workdir / f"{label}.csr"
        times["pkcs11_key"].append(timed_module(
            "pkcs11_key", token.module_args(label=label, key_type="ec", curve="secp256r1")))
        times["pkcs11_csr"].append(timed_module(
            "pkcs11_csr", token.module_args(label=label, subject={"O": "bench", "CN": label}, path=str(csr_path))))
        times["x509_issue (file CA)"].append(timed_module("x509_issue", dict(
            csr_path=str(csr_path), path=str(workdir / f"{label}.pem"), ca_cert_path=str(file_ca.cert_path),
            ca_key=file_ca.key_option())))
        times["x509_issue (token CA)"].append(timed_module("x509_issue", dict(
            csr_path=str(csr_path), path=str(workdir / f"{label}-tok.pem"), ca_cert_path=str(token_ca_path),
            ca_key=token.module_args(label="bench-ca"))))
    return times


def describe(samples, baseline):
    median = statistics.median(samples)
    return f"{median:6.3f} s ({min(samples):.3f}-{max(samples):.3f}) x{median / baseline:4.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-tpm", action="store_true", help="skip swtpm")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-pki-"))
    tpm = None
    try:
        baseline = statistics.median(timed_ping() for _ in range(options.runs))
        results = {"SoftHSM2": pipeline(make_softhsm_token(workdir / "softhsm"), workdir / "softhsm-run",
                                        options.runs)}
        if not options.no_tpm:
            tpm = SoftwareTPM(workdir / "swtpm").start()
            store = workdir / "tpm2-store"
            store.mkdir()
            env = dict(tpm.env, TPM2_PKCS11_STORE=str(store))
            tpm_token = Token(TPM2_MODULE, "bench-tpm", "4321", "87654321", env, "tpm2")
            _init_token_in_subprocess(TPM2_MODULE, tpm_token.token_label, tpm_token.so_pin, tpm_token.pin, env)
            results["swtpm"] = pipeline(tpm_token, workdir / "swtpm-run", options.runs)
    finally:
        if tpm is not None:
            tpm.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Module wall time, median (min-max) of {options.runs} runs, xN = ratio to the baseline")
    print(f"baseline ansible.builtin.ping process: {baseline:.3f} s; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs (absolute times grow with load, the ratios much less)")
    backends = list(results)
    print(f"{'module':24}" + "".join(f"{b:>34}" for b in backends))
    for name in results["SoftHSM2"]:
        print(f"{name:24}" + "".join(f"{describe(results[b][name], baseline):>34}" for b in backends))
    pipeline_totals = {b: sum(statistics.median(results[b][n]) for n in ("pkcs11_key", "pkcs11_csr",
                                                                          "x509_issue (file CA)"))
                       for b in backends}
    print("keygen + CSR + issue (file CA), sum of medians: "
          + ", ".join(f"{b} {total:.3f} s" for b, total in pipeline_totals.items()))
    slowest = max(statistics.median(samples) for samples in results["SoftHSM2"].values())
    verdict = "meets" if slowest < GOAL_SECONDS else "MISSES"
    print(f"goal: every module run on SoftHSM EC under {GOAL_SECONDS:.1f} s; slowest median {slowest:.3f} s "
          f"({slowest / GOAL_SECONDS:.0%} of the goal): {verdict} it")


if __name__ == "__main__":
    main()
