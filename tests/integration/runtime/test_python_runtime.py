"""python_runtime: one prebuilt archive per host Python version and architecture, built once on the controller."""
import platform
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.ansible import run_module

REPO = Path(__file__).resolve().parents[3]
WHEELHOUSE = REPO / ".work" / "wheelhouse"
GLIBC = platform.libc_ver()[1]
HOST = "%d.%d" % sys.version_info[:2]
HELPER_MODULES = [str(REPO / "plugins" / "module_utils" / name) for name in ("_der.py", "_sigv4x509.py")]


def target(version):
    return {"python_version": version, "machine": platform.machine(), "glibc": GLIBC}


def args(tmp_path, *versions, **extra):
    values = dict(targets=[target(v) for v in versions], cache_dir=str(tmp_path / "cache"),
                  wheelhouse=[str(WHEELHOUSE)], modules=HELPER_MODULES)
    values.update(extra)
    return values


def wheels_for(version):
    tag = "cp" + version.replace(".", "")
    return any(f"-{tag}-{tag}-" in wheel.name for wheel in WHEELHOUSE.glob("python_pkcs11-*.whl"))


def test_one_archive_per_python_version_built_once_and_usable_offline(tmp_path):
    other = next((v for v in ("3.9", "3.13") if v != HOST and wheels_for(v)), None)
    if other is None:
        pytest.skip("the wheelhouse has python-pkcs11 for one Python version only")
    check = run_module("python_runtime", args(tmp_path, HOST, other), check_mode=True)
    assert not check.changed and len({t["key"] for t in check["targets"]}) == 2
    assert not (tmp_path / "cache").exists()

    built = run_module("python_runtime", args(tmp_path, HOST, other, HOST))
    assert built.changed, built
    targets = {t["python_version"]: t for t in built["targets"]}
    assert sorted(targets) == sorted([HOST, other]) and targets[HOST]["key"] != targets[other]["key"]
    assert [t["key"] for t in check["targets"]] == [t["key"] for t in built["targets"]]
    assert targets[HOST]["compiled"]  # this interpreter compiled its own version's bytecode
    for version, entry in targets.items():
        with tarfile.open(entry["path"]) as archive:
            names = archive.getnames()
        assert f"{entry['key']}/python{version}/pkcs11/__init__.py" in names
        assert f"{entry['key']}/python{version}/ansible_collections/rolesanywhere/fleet/plugins/module_utils/_der.py" in names
        tag = "cpython-" + version.replace(".", "")
        assert any(n.startswith(f"{entry['key']}/python{version}/pkcs11/_pkcs11.{tag}") for n in names)

    rerun = run_module("python_runtime", args(tmp_path, HOST, other))
    assert not rerun.changed and [t["path"] for t in rerun["targets"]] == [t["path"] for t in built["targets"]]

    # Unpacked, it imports with no site-packages and no index: nothing is installed on the host.
    with tarfile.open(targets[HOST]["path"]) as archive:
        archive.extractall(tmp_path / "host")
    runtime = tmp_path / "host" / targets[HOST]["key"] / f"python{HOST}"
    code = (f"import sys; sys.path.insert(0, {str(runtime)!r}); import cryptography, pkcs11; "
            "from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _sigv4x509; print(pkcs11.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PIP_NO_INDEX": "1"}, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith(str(runtime)), proc.stderr


def test_a_version_without_wheels_is_a_clear_error(tmp_path):
    missing = next(v for v in ("3.12", "3.10", "3.14") if not wheels_for(v))
    failed = run_module("python_runtime", args(tmp_path, missing))
    assert failed.failed
    assert f"no wheel of python-pkcs11 for CPython {missing} on {platform.machine()}" in failed["msg"], failed
    assert str(WHEELHOUSE) in failed["msg"] and not list((tmp_path / "cache").glob("*.tar.gz"))


def test_bad_platform_values_are_refused(tmp_path):
    failed = run_module("python_runtime", dict(args(tmp_path, HOST), targets=[dict(target(HOST), glibc="")]))
    assert failed.failed and "glibc" in failed["msg"]
