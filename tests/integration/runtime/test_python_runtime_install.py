"""python_runtime_install: the runtime unpacked atomically and the helper's command installed, in one module run."""
import io
import os
import platform
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.ansible import run_module, signing_helper_modules

REPO = Path(__file__).resolve().parents[3]
HOST = "%d.%d" % sys.version_info[:2]
ENTRY_POINT = (REPO / "roles" / "signing_helper" / "files" / "rolesanywhere-credential-helper").read_text()
HELPER_MODULES = [str(REPO / "plugins" / "module_utils" / name) for name in signing_helper_modules()]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    built = run_module("python_runtime", dict(
        targets=[{"python_version": HOST, "machine": platform.machine(), "glibc": platform.libc_ver()[1]}],
        cache_dir=str(cache), wheelhouse=[str(REPO / ".work" / "wheelhouse")], modules=HELPER_MODULES), timeout=600)
    assert built.changed, built
    return built["targets"][0]


def install_args(runtime, tmp_path, **extra):
    runtime_dir = tmp_path / "prefix" / "runtime"
    entry_point = ENTRY_POINT.replace("#!/usr/bin/env python", f"#!{sys.executable} -IS", 1).replace(
        'RUNTIME = ""', f'RUNTIME = "{runtime_dir}/{runtime["key"]}/python{HOST}"', 1)
    args = dict(src=runtime["path"], dest=str(runtime_dir), key=runtime["key"], python_version=HOST,
                compiled=runtime["compiled"],
                helper=dict(path=str(tmp_path / "prefix" / "bin" / "rolesanywhere-credential-helper"),
                            content=entry_point, link=str(tmp_path / "bin" / "rolesanywhere-credential-helper")))
    args.update(extra)
    return args


def test_check_apply_rerun_installs_runtime_and_helper(runtime, tmp_path):
    args = install_args(runtime, tmp_path)
    checked = run_module("python_runtime_install", args, check_mode=True)
    assert checked.changed and not (tmp_path / "prefix").exists() and checked["helper_version"] == ""

    applied = run_module("python_runtime_install", args)
    assert applied.changed, applied
    runtime_dir = Path(applied["runtime_dir"])
    assert runtime_dir == tmp_path / "prefix" / "runtime" / runtime["key"] / f"python{HOST}"
    assert (runtime_dir / "pkcs11" / "__init__.py").is_file()
    assert os.readlink(tmp_path / "prefix" / "runtime" / "current") == f"{runtime['key']}/python{HOST}"
    assert not [p for p in (tmp_path / "prefix" / "runtime").iterdir() if p.name.startswith(".unpack-")]
    command = Path(args["helper"]["path"])
    assert stat.S_IMODE(command.stat().st_mode) == 0o755 and command.read_text() == args["helper"]["content"]
    assert os.readlink(args["helper"]["link"]) == str(command)
    # The version check ran the installed command: what it printed is what the link runs now.
    printed = subprocess.run([args["helper"]["link"], "version"], capture_output=True, text=True, check=True)
    assert applied["helper_version"] and applied["helper_version"] == printed.stdout.strip()

    # A rerun that knows the runtime is there sends nothing (src None) and changes nothing.
    rerun = run_module("python_runtime_install", dict(args, src=None, present=True))
    assert not rerun.changed and rerun["runtime_dir"] == applied["runtime_dir"], rerun


def test_helper_whose_version_check_fails_is_reported(runtime, tmp_path):
    args = install_args(runtime, tmp_path)
    args["helper"]["content"] = "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n"
    failed = run_module("python_runtime_install", args)
    assert failed.failed and "version failed (rc 3): cannot start" in failed["msg"], failed


def test_missing_runtime_without_archive_is_a_clear_error(runtime, tmp_path):
    failed = run_module("python_runtime_install", install_args(runtime, tmp_path, src=None, present=True))
    assert failed.failed and "is missing and no archive was sent" in failed["msg"], failed
    assert not (tmp_path / "prefix" / "runtime").exists()


def test_archive_escaping_its_directory_is_refused_and_nothing_is_left(runtime, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        data = b"planted\n"
        member = tarfile.TarInfo(f"{runtime['key']}/../../outside")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    failed = run_module("python_runtime_install", install_args(runtime, tmp_path, src=str(evil)))
    assert failed.failed and "is not a file or directory under" in failed["msg"], failed
    assert not (tmp_path / "prefix" / "outside").exists() and not (tmp_path / "outside").exists()
    assert list((tmp_path / "prefix" / "runtime").iterdir()) == []
