"""Role signing_helper: the aws install path (local file, SHA-256, a mismatch keeps the old binary), the bundled
Python helper install, and the hardened serve/update units."""
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ansible import run_playbook, signing_helper_modules

pytestmark = pytest.mark.slow  # each test runs ansible-playbook two to four times

PLAYBOOK = Path(__file__).parent / "playbooks" / "signing_helper.yml"
ANCHOR = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/aaaa"
PROFILE = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/bbbb"
ROLE = "arn:aws:iam::111122223333:role/app"


def recap(proc):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    assert match, proc.stdout[-3000:]
    return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[3])}


def fake_release(path, version):
    """Any local file stands in for AWS's release: here a script that answers `version`."""
    path.write_text(f"#!/bin/sh\necho {version}\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def aws_vars(tmp_path, src, sha):
    return dict(
        signing_helper_impl="aws",
        signing_helper_prefix=str(tmp_path / "opt"),
        signing_helper_bin_dir=str(tmp_path / "bin"),
        signing_helper_aws_version="1.5.0",
        signing_helper_aws_src=str(src),
        signing_helper_aws_sha256=sha,
    )


def test_aws_install_from_local_file_and_checksum_mismatch_keeps_old_binary(tmp_path):
    good = tmp_path / "release-good"
    sha = fake_release(good, "1.5.0")
    variables = aws_vars(tmp_path, good, sha)
    installed = tmp_path / "bin" / "aws_signing_helper"

    # auto picks AWS's binary here (x86_64, glibc 2.36)
    checked = run_playbook(PLAYBOOK, extra_vars=dict(variables, signing_helper_impl="auto"), args=["--check"])
    assert recap(checked)["failed"] == 0 and not installed.exists()
    assert "selected=aws" in checked.stdout

    first = run_playbook(PLAYBOOK, extra_vars=variables)
    assert recap(first)["changed"] > 0 and "selected=aws" in first.stdout and "version=1.5.0" in first.stdout
    assert installed.read_bytes() == good.read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert subprocess.run([installed, "version"], capture_output=True, text=True).stdout == "1.5.0\n"
    assert recap(run_playbook(PLAYBOOK, extra_vars=variables))["changed"] == 0

    # A tampered "release" under the same pinned checksum: refused, installed binary untouched.
    bad = tmp_path / "release-bad"
    bad.write_text("#!/bin/sh\necho pwned\n")
    refused = run_playbook(PLAYBOOK, extra_vars=aws_vars(tmp_path, bad, sha), check=False)
    assert refused.returncode != 0
    assert "was refused" in refused.stdout and sha in refused.stdout
    assert installed.read_bytes() == good.read_bytes()
    assert not (tmp_path / "opt" / "staging" / "aws_signing_helper-1.5.0").exists()


def test_aws_refuses_unknown_checksum(tmp_path):
    release = tmp_path / "release"
    fake_release(release, "9.9.9")
    variables = aws_vars(tmp_path, release, "")
    variables["signing_helper_aws_version"] = "9.9.9"
    proc = run_playbook(PLAYBOOK, extra_vars=variables, check=False)
    assert proc.returncode != 0 and "No SHA-256 for aws_signing_helper 9.9.9" in proc.stdout
    assert not (tmp_path / "bin" / "aws_signing_helper").exists()


def python_vars(tmp_path, **extra):
    values = dict(
        signing_helper_impl="python",
        signing_helper_python_deps="existing",
        signing_helper_python=sys.executable,
        signing_helper_prefix=str(tmp_path / "opt"),
        signing_helper_bin_dir=str(tmp_path / "bin"),
        signing_helper_unit_dir=str(tmp_path / "units"),
        signing_helper_service_env_dir=str(tmp_path / "etc"),
        signing_helper_manage_services=False,
    )
    values.update(extra)
    return values


def test_python_install_runs_the_collection_code_with_its_interpreter(tmp_path, installed_helper,
                                                                     installed_helper_vars):
    # auto falls back to the bundled helper where AWS ships no build (no architecture mapped here)
    fallback = python_vars(tmp_path, signing_helper_impl="auto", signing_helper_aws_arch_names={})
    checked = run_playbook(PLAYBOOK, extra_vars=fallback, args=["--check"])
    assert recap(checked)["failed"] == 0 and not (tmp_path / "opt").exists()
    assert "selected=python" in checked.stdout

    # the session's install (the role applied by the installed_helper fixture)
    prefix = Path(installed_helper_vars["signing_helper_prefix"])
    assert os.path.realpath(installed_helper) == str(prefix / "bin" / "rolesanywhere-credential-helper")
    assert installed_helper.read_text().splitlines()[0] == f"#!{sys.executable}"
    lib = prefix / "lib" / "ansible_collections" / "rolesanywhere" / "fleet" / "plugins" / "module_utils"
    repo_utils = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
    for name in signing_helper_modules():
        assert (lib / name).read_bytes() == (repo_utils / name).read_bytes()
        assert list((lib / "__pycache__").glob(name[:-3] + ".*.pyc"))  # precompiled for unprivileged users
    # The installed command imports the installed copy, not the repository (clean environment, no PYTHONPATH).
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([installed_helper, "version"], capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stdout) == (0, "0.1.0\n"), proc.stderr
    rerun = run_playbook(PLAYBOOK, extra_vars=installed_helper_vars)
    assert recap(rerun)["changed"] == 0 and "version=0.1.0" in rerun.stdout


def test_service_units_are_hardened_keep_the_pin_private_and_follow_the_certificate(tmp_path):
    cert = tmp_path / "host.pem"
    cert.write_text("first certificate\n")
    services = [
        dict(name="app-serve", mode="serve", user="daemon", certificate=str(cert),
             private_key="pkcs11:token=host;object=ra%20key?pin-value=97315", pkcs11_lib="/usr/lib/softhsm/libsofthsm2.so",
             trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE, port=9912,
             environment={"SOFTHSM2_CONF": "/etc/softhsm/app.conf"}),
        dict(name="app-update", mode="update", user="daemon", certificate=str(cert),
             private_key="/etc/rolesanywhere/host.key", trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE,
             credentials_file="/home/app/.aws/credentials"),
    ]
    variables = python_vars(tmp_path, signing_helper_services=services, signing_helper_p11kit_dir=str(tmp_path / "p11"),
                            signing_helper_p11kit_modules=[{"name": "softhsm-ra",
                                                            "module": "/usr/lib/softhsm/libsofthsm2.so"}])
    (tmp_path / "units").mkdir()
    run_playbook(PLAYBOOK, extra_vars=variables)
    registered = (tmp_path / "p11" / "softhsm-ra.module").read_text().splitlines()
    assert "module: /usr/lib/softhsm/libsofthsm2.so" in registered and not [l for l in registered if "critical" in l]
    serve_unit = (tmp_path / "units" / "rolesanywhere-app-serve.service").read_text()
    update_unit = (tmp_path / "units" / "rolesanywhere-app-update.service").read_text()
    assert "97315" not in serve_unit
    env_file = tmp_path / "etc" / "app-serve.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    assert 'RA_PRIVATE_KEY="pkcs11:token=host;object=ra%20key?pin-value=97315"' in env_file.read_text()
    assert 'SOFTHSM2_CONF="/etc/softhsm/app.conf"' in env_file.read_text()
    exec_start = next(line for line in serve_unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith(f"ExecStart={tmp_path}/bin/rolesanywhere-credential-helper serve --certificate ")
    # the bundled helper takes the key URI (which may hold the PIN) from RA_PRIVATE_KEY, never from its arguments
    assert "--private-key" not in exec_start and "--port 9912" in exec_start
    assert "--pkcs11-lib /usr/lib/softhsm/libsofthsm2.so" in exec_start
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes",
                    "User=daemon", "Restart=always"):
        assert setting in serve_unit and setting in update_unit
    assert "ReadWritePaths=/home/app/.aws" in update_unit
    assert "Environment=AWS_SHARED_CREDENTIALS_FILE=/home/app/.aws/credentials" in update_unit
    assert "update --certificate" in update_unit and "--profile default" in update_unit
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                 str(tmp_path / "units" / "rolesanywhere-app-serve.service")],
                                capture_output=True, text=True)
        assert "rolesanywhere-app-serve.service:" not in verify.stderr, verify.stderr

    assert recap(run_playbook(PLAYBOOK, extra_vars=variables))["changed"] == 0
    cert.write_text("rotated certificate\n")
    rotated = run_playbook(PLAYBOOK, extra_vars=variables)
    # Both units embed the certificate checksum, so a new certificate rewrites (and restarts) both.
    assert recap(rotated)["changed"] == 1
    assert "changed: [localhost] => (item=app-serve)" in rotated.stdout
    assert "changed: [localhost] => (item=app-update)" in rotated.stdout
    sha = hashlib.sha256(cert.read_bytes()).hexdigest()
    for unit in ("rolesanywhere-app-serve.service", "rolesanywhere-app-update.service"):
        assert f"sha256 {sha}" in (tmp_path / "units" / unit).read_text()


def make_wheel(directory, name="ra_offline_probe", version="1.0"):
    """A minimal pure-Python wheel, so the offline install needs no index and no build step."""
    import base64
    import zipfile

    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for path, data in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


def test_python_venv_installs_offline_from_a_wheelhouse(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse)
    variables = python_vars(tmp_path, signing_helper_python_deps="venv", signing_helper_wheelhouse=str(wheelhouse),
                            signing_helper_pip_packages=["ra_offline_probe==1.0"])
    # A dead index: only --no-index --find-links can succeed.
    proc = run_playbook(PLAYBOOK, extra_vars=variables, env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple"},
                        check=False)
    venv_python = tmp_path / "opt" / "venv" / "bin" / "python"
    probe = subprocess.run([venv_python, "-c", "import ra_offline_probe; print(ra_offline_probe.VALUE)"],
                           capture_output=True, text=True)
    assert probe.stdout == "42\n", proc.stdout[-3000:]
    # The probe wheel is not cryptography: the role stops with the fix instead of installing a broken helper.
    assert proc.returncode != 0
    assert "cannot import cryptography and python-pkcs11" in proc.stdout
    assert "signing_helper_wheelhouse" in proc.stdout
    assert not (tmp_path / "bin" / "rolesanywhere-credential-helper").exists()


def test_aws_binary_that_cannot_run_fails_with_the_fix(tmp_path):
    release = tmp_path / "release"
    release.write_bytes(b"\x7fELF not really a binary\n")
    sha = hashlib.sha256(release.read_bytes()).hexdigest()
    proc = run_playbook(PLAYBOOK, extra_vars=aws_vars(tmp_path, release, sha), check=False)
    assert proc.returncode != 0
    assert "aws_signing_helper version failed" in proc.stdout and "signing_helper_impl python" in proc.stdout


def test_python_impl_refuses_an_interpreter_that_does_not_run(tmp_path):
    variables = python_vars(tmp_path, signing_helper_python=str(tmp_path / "no-such-python"))
    proc = run_playbook(PLAYBOOK, extra_vars=variables, check=False)
    assert proc.returncode != 0 and "does not run: set signing_helper_python" in proc.stdout
    assert not (tmp_path / "opt" / "lib").exists()
