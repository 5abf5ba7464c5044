"""Role signing_helper with the prebuilt runtime (python_deps runtime): built on the controller from a wheelhouse,
unpacked, the command started with -I -S and the runtime as its import path; a rerun changes nothing."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.credentials.test_signing_helper_role import PLAYBOOK, recap
from tests.support.ansible import REPO, run_playbook

pytestmark = pytest.mark.slow


def test_runtime_install_check_apply_rerun(tmp_path):
    variables = dict(signing_helper_impl="python", signing_helper_python_deps="runtime",
                     signing_helper_python=sys.executable, signing_helper_prefix=str(tmp_path / "opt"),
                     signing_helper_bin_dir=str(tmp_path / "bin"),
                     signing_helper_wheelhouse=str(REPO / ".work" / "wheelhouse"),
                     signing_helper_runtime_cache_dir=str(tmp_path / "cache"))
    checked = run_playbook(PLAYBOOK, extra_vars=variables, args=["--check"])
    assert recap(checked)["failed"] == 0 and not (tmp_path / "opt").exists(), checked.stdout[-3000:]

    applied = run_playbook(PLAYBOOK, extra_vars=variables)
    assert recap(applied)["failed"] == 0, applied.stdout[-3000:]
    command = tmp_path / "bin" / "rolesanywhere-credential-helper"
    lines = command.read_text().splitlines()
    assert lines[0] == f"#!{sys.executable} -IS"
    runtime = Path(next(line for line in lines if line.startswith("RUNTIME = ")).split(" = ", 1)[1].strip('"'))
    assert runtime.parent.parent == tmp_path / "opt" / "runtime" and (runtime / "pkcs11").is_dir()
    assert (runtime / "ansible_collections/rolesanywhere/fleet/plugins/module_utils/_credential_helper.py").is_file()
    assert (tmp_path / "opt" / "runtime" / "current").resolve() == runtime.resolve()
    assert not (tmp_path / "opt" / "venv").exists() and not (tmp_path / "opt" / "lib").exists()
    # Started through its shebang in a bare environment: the runtime is its only import path.
    proc = subprocess.run([command, "version"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                          check=False)
    assert (proc.returncode, proc.stdout) == (0, "0.1.0\n"), proc.stderr
    imports = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path.insert(0, {str(runtime)!r}); "
                              "import cryptography, pkcs11; print(pkcs11.__file__)"], capture_output=True, text=True,
                             check=False)
    assert imports.stdout.startswith(str(runtime)), imports.stderr

    rerun = run_playbook(PLAYBOOK, extra_vars=variables)
    assert recap(rerun)["changed"] == 0, rerun.stdout[-3000:]
