# -*- coding: utf-8 -*-
# Copyright (c) rolesanywhere.fleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hosts' Python runtime (cryptography, python-pkcs11, asn1crypto) as one prebuilt archive per target.

Made once on the controller per (host Python minor version, architecture, C library) with
``pip install --target --only-binary :all:`` from a wheelhouse or an index the controller reaches, precompiled
when the controller has that Python, and packed as ``<key>/pythonX.Y/...`` plus a ``current`` link to it. The bundled helper's own modules
(copies of module_utils, with their package path) travel in the same archive. Hosts only unpack it: no venv, no
pip resolver, no package index. The key digests every input, so a rerun finds the archive and changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

DEFAULT_PACKAGES = ("cryptography", "python-pkcs11", "asn1crypto")
_VERSION = re.compile(r"^3\.[0-9]{1,2}$")
_GLIBC = re.compile(r"^2\.[0-9]{1,3}$")
_MACHINE = re.compile(r"^[A-Za-z0-9_]+$")


class RuntimeBuildError(Exception):
    """A runtime cannot be built; the message names what is missing and how to provide it."""


def platforms(machine: str, glibc: str) -> list:
    """pip --platform tags a host with this architecture and glibc accepts (manylinux 2.17 up to its glibc)."""
    if not _MACHINE.match(machine or ""):
        raise RuntimeBuildError(f"host architecture {machine!r} is not a machine name such as x86_64 or aarch64")
    if not _GLIBC.match(glibc or ""):
        raise RuntimeBuildError(f"host C library {glibc!r} is not glibc 2.x: prebuilt runtimes need a glibc host "
                                "(manylinux wheels); use signing_helper_python_deps existing on musl hosts")
    newest = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, 16, -1)]
    return tags + [f"manylinux2014_{machine}", f"linux_{machine}"]


def _sources_fingerprint(wheelhouses, index_url):
    listing = []
    for directory in wheelhouses:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise RuntimeBuildError(f"wheelhouse {directory} cannot be read ({exc.strerror}): fix the path") from None
        listing.append([directory, [[n, os.path.getsize(os.path.join(directory, n))] for n in names]])
    return {"wheelhouses": listing, "index_url": index_url or ""}


MODULE_UTILS = os.path.join("ansible_collections", "rolesanywhere", "fleet", "plugins", "module_utils")


def _modules_fingerprint(modules):
    digests = []
    for path in modules:
        try:
            with open(path, "rb") as fh:
                digests.append([os.path.basename(path), hashlib.sha256(fh.read()).hexdigest()])
        except OSError as exc:
            raise RuntimeBuildError(f"module file {path} cannot be read ({exc.strerror})") from None
    return digests


def runtime_key(python_version, machine, glibc, packages, wheelhouses=(), index_url=None, modules=()) -> str:
    """The digest naming an archive: every input that changes its contents."""
    if not _VERSION.match(python_version or ""):
        raise RuntimeBuildError(f"host Python version {python_version!r} is not X.Y (e.g. 3.11)")
    inputs = {"python": python_version, "platforms": platforms(machine, glibc), "packages": sorted(packages),
              "sources": _sources_fingerprint(wheelhouses, index_url), "modules": _modules_fingerprint(modules),
              "format": 3, "stripped": bool(shutil.which("strip"))}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _missing(stderr: str):
    found = re.search(r"No matching distribution found for ([^\s]+)", stderr)
    return found.group(1) if found else None


def _compiler(python_version):
    """An interpreter of the host's minor version on the controller (bytecode must match the host's)."""
    if "%d.%d" % sys.version_info[:2] == python_version:
        return sys.executable
    return shutil.which(f"python{python_version}")


def _strip_debug_info(directory):
    """Drop debug sections from extension modules (python-pkcs11's are 7 of its 8 MB): every host receives them."""
    strip = shutil.which("strip")
    if not strip:
        return
    libraries = [os.path.join(root, name) for root, _dirs, names in os.walk(directory) for name in names
                 if name.endswith(".so")]
    if libraries:
        subprocess.run([strip, "--strip-debug", *libraries], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)


def build(python_version, machine, glibc, cache_dir, packages=DEFAULT_PACKAGES, wheelhouses=(), index_url=None,
          modules=(), pip_args=()):
    """The archive for one target, built unless the cache has it: ``{"path", "key", "built", "compiled"}``.

    ``modules`` are module_utils files installed under their package path next to the packages.
    """
    if not wheelhouses and not index_url:
        raise RuntimeBuildError("no package source: give a wheelhouse directory or an index URL for the runtime")
    key = runtime_key(python_version, machine, glibc, packages, wheelhouses, index_url, modules)
    tag = f"cp{python_version.replace('.', '')}-{machine}"
    path = os.path.join(cache_dir, f"runtime-{tag}-{key}.tar.gz")
    result = {"path": path, "key": key, "built": False, "python_version": python_version, "machine": machine}

    def cached():
        try:
            with open(path + ".json") as info:
                return dict(result, compiled=json.load(info)["compiled"])
        except (OSError, ValueError, KeyError):
            return None

    if os.path.isfile(path) and cached():
        return cached()
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    import fcntl

    with open(os.path.join(cache_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # forks building the same target wait for the first
        if os.path.isfile(path) and cached():
            return cached()
        with tempfile.TemporaryDirectory(prefix=".build-", dir=cache_dir) as work:
            target = os.path.join(work, key, f"python{python_version}")
            command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir",
                       "--quiet", "--no-compile", "--target", target, "--only-binary", ":all:",
                       "--implementation", "cp", "--python-version", python_version]
            for platform_tag in platforms(machine, glibc):
                command += ["--platform", platform_tag]
            if index_url:
                command += ["--index-url", index_url]
            else:
                command.append("--no-index")
            for directory in wheelhouses:
                command += ["--find-links", directory]
            command += list(pip_args) + list(packages)
            proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
            if proc.returncode != 0:
                missing = _missing(proc.stderr)
                where = index_url or ", ".join(wheelhouses)
                if missing:
                    raise RuntimeBuildError(
                        f"no wheel of {missing} for CPython {python_version} on {machine} (glibc {glibc}) in {where}: "
                        f"add one (pip download --only-binary :all: --python-version {python_version} --platform "
                        f"manylinux_2_17_{machine} -d <wheelhouse> {missing}) or point the runtime at an index that has it")
                raise RuntimeBuildError(f"pip could not build the runtime for CPython {python_version} on {machine}: "
                                        + " ".join(proc.stderr.strip().splitlines()[-3:]))
            _strip_debug_info(target)
            if modules:
                os.makedirs(os.path.join(target, MODULE_UTILS))
                for module_file in modules:
                    shutil.copy(module_file, os.path.join(target, MODULE_UTILS, os.path.basename(module_file)))
            compiler = _compiler(python_version)
            # Unchecked hashes: valid whatever mtimes the hosts' unpacking gives the sources. Without an
            # interpreter of that version here (or when it fails), the hosts compile after unpacking.
            compiled = bool(compiler) and subprocess.run(
                [compiler, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", target],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0
            result["compiled"] = compiled
            partial = path + ".part"
            # "current" points at this runtime once unpacked: a stable import path for later runs' modules.
            os.symlink(os.path.join(key, f"python{python_version}"), os.path.join(work, "current"))
            with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
                archive.add(os.path.join(work, key), arcname=key)
                archive.add(os.path.join(work, "current"), arcname="current")
            os.replace(partial, path)
            with open(path + ".json", "w") as info:
                json.dump({"compiled": compiled}, info)
    result["built"] = True
    return result


class RuntimeInstallError(Exception):
    """A runtime cannot be installed on this host; the message names the problem and the fix."""


def _members(archive, key):
    """The archive's files under ``<key>/``: anything else (absolute names, ``..``, links, devices) is refused."""
    members = []
    for member in archive.getmembers():
        name = os.path.normpath(member.name)
        if member.name == "current" and member.issym():
            continue  # the link is made here, pointing at what was unpacked
        if (name.startswith(("/", "..")) or not (name == key or name.startswith(key + "/"))
                or not (member.isfile() or member.isdir())):
            raise RuntimeInstallError(f"runtime archive member {member.name!r} is not a file or directory under "
                                      f"{key}/: rebuild the archive with the python_runtime module")
        member.mode = 0o755 if member.isdir() or member.mode & 0o111 else 0o644
        member.uid = member.gid = 0
        members.append(member)
    return members


def _replace_link(target, link_path):
    """Point ``link_path`` at ``target`` with one rename (readers see the old or the new link, never none)."""
    try:
        if os.readlink(link_path) == target:
            return False
    except OSError:
        pass
    temporary = f"{link_path}.{os.getpid()}.tmp"
    os.symlink(target, temporary)
    os.replace(temporary, link_path)
    return True


def install(archive_path, dest, key, python_version, compiled=True, check_mode=False):
    """Unpack the runtime ``<dest>/<key>/python<X.Y>`` (atomically: a killed run leaves no half runtime) and point
    ``<dest>/current`` at it. ``archive_path`` may be None when the runtime is known to be there. Returns
    ``(changed, runtime_dir)``."""
    if not _VERSION.match(python_version or "") or not re.match(r"^[0-9a-f]{16}$", key or ""):
        raise RuntimeInstallError(f"runtime key {key!r} or Python version {python_version!r} is malformed: pass the "
                                  "key and python_version the python_runtime module returned")
    relative = os.path.join(key, f"python{python_version}")
    runtime_dir = os.path.join(dest, relative)
    present = os.path.isdir(runtime_dir)
    if check_mode:
        return not present or os.path.realpath(os.path.join(dest, "current")) != runtime_dir, runtime_dir
    if not present:
        if archive_path is None:
            raise RuntimeInstallError(f"{runtime_dir} is missing and no archive was sent: run again without "
                                      "present=true")
        os.makedirs(dest, mode=0o755, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".unpack-", dir=dest)
        try:
            with tarfile.open(archive_path) as archive:
                archive.extractall(work, members=_members(archive, key))
            if not os.path.isdir(os.path.join(work, relative)):
                raise RuntimeInstallError(f"the archive has no {relative}: it was built for another Python version")
            if not compiled:
                subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(work, relative)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            os.makedirs(os.path.join(dest, key), mode=0o755, exist_ok=True)
            os.rename(os.path.join(work, relative), runtime_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    linked = _replace_link(relative, os.path.join(dest, "current"))
    return not present or linked, runtime_dir


def install_command(path, content, link=None, check_mode=False):
    """Write an executable (0755, root's) and link it from ``link``; returns whether anything changed. Both live
    in root-owned directories (the prefix, /usr/local/bin)."""
    from ansible_collections.rolesanywhere.fleet.plugins.module_utils import _user_files as files

    try:
        changed = files.ensure_file(path, content.encode("utf-8"), 0, 0, 0o755, check_mode)
    except files.UnsafePath as exc:
        raise RuntimeInstallError(str(exc)) from None
    if link is None or (os.path.islink(link) and os.readlink(link) == path):
        return changed
    if not check_mode:
        os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
        _replace_link(path, link)
    return True
