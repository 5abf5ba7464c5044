"""Builds the collection's execution environment (EE) offline: ``make ee``.

1. Base image: a Debian 12 rootfs from debootstrap (python3, pip, ssh client, openssl) imported with
   ``podman import`` as localhost/rolesanywhere-fleet-ee-base:bookworm. No registry is needed.
2. Wheelhouse: ``pip download`` on this machine of everything pip installs in the image (ansible-core,
   ansible-runner, the collection's requirements.txt, ansible-builder's own helpers), pinned by
   tests/requirements.txt. Inside the build pip only reads it (no index).
3. The collection tarball (``ansible-galaxy collection build``).
4. ``ansible-builder build`` of tests/ee/execution-environment.yml with ``--network=none``, tagged
   localhost/rolesanywhere-fleet-ee:<collection version> (and :latest).

Each step is skipped when its inputs are unchanged. Podman runs with the project-local configuration of
tests/support/podman.py.
"""
import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.podman import image_exists, podman, podman_env  # noqa: E402

WORK = REPO / ".work" / "ee"
DEFINITION = REPO / "tests" / "ee" / "execution-environment.yml"
BASE_TAG = "localhost/rolesanywhere-fleet-ee-base:bookworm"
IMAGE = "localhost/rolesanywhere-fleet-ee"
SUITE = "bookworm"
BASE_PACKAGES = ["python3", "python3-pip", "openssh-client", "ca-certificates", "openssl", "p11-kit"]
# pip installs these inside the build besides the collection's requirements.txt: ansible-builder's builder
# stage (bindep and its helpers) and the container's init.
BUILD_PACKAGES = ["bindep", "pyyaml", "packaging", "dumb-init==1.2.5"]
FLEET_DEBS = REPO / ".work" / "fleet" / "base" / "debs"


def log(message):
    print(f"ee: {message}", flush=True)


def digest(*parts):
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()


def collection_version():
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def image_tag():
    return f"{IMAGE}:{collection_version()}"


def run(cmd, **kwargs):
    subprocess.run(cmd, check=True, **kwargs)


def mirror():
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                uri = next((u for u in line.split()[1:] if "security" not in u), None)
                if uri:
                    return uri
    return "http://deb.debian.org/debian"


def build_base():
    """debootstrap rootfs -> podman import; rebuilt only when the package list changes."""
    stamp = WORK / "base.sha256"
    want = digest(SUITE, *BASE_PACKAGES)
    if image_exists(BASE_TAG) and stamp.is_file() and stamp.read_text() == want:
        log(f"base image {BASE_TAG} up to date")
        return
    rootfs = WORK / "base-rootfs"
    debs = WORK / "debs"
    shutil.rmtree(rootfs, ignore_errors=True)
    debs.mkdir(parents=True, exist_ok=True)
    if FLEET_DEBS.is_dir():  # the fleet image's downloads: nothing is fetched twice on one machine
        for deb in FLEET_DEBS.glob("*.deb"):
            target = debs / deb.name
            if not target.exists():
                shutil.copy2(deb, target)
    started = time.monotonic()
    log(f"debootstrap --variant=minbase {SUITE} ({', '.join(BASE_PACKAGES)})")
    with open(WORK / "debootstrap.log", "w") as out:
        run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(rootfs), mirror()], stdout=out, stderr=subprocess.STDOUT)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / junk).glob("*"):
            if path.is_file():
                path.unlink()
    (rootfs / "etc" / "resolv.conf").write_text("")
    (rootfs / "etc" / "hostname").write_text("ee\n")
    log(f"debootstrap done in {time.monotonic() - started:.0f} s; podman import")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "--change", "CMD [\"/bin/bash\"]", "-", BASE_TAG], stdin=tar.stdout,
                   check=True, env=podman_env(), stdout=subprocess.DEVNULL)
    if tar.wait() != 0:
        raise SystemExit("ee: tar of the base rootfs failed")
    shutil.rmtree(rootfs)
    stamp.write_text(want)


def fill_wheelhouse():
    """pip download, pinned by tests/requirements.txt, binary wheels only (nothing is compiled in the build)."""
    definition = yaml.safe_load(DEFINITION.read_text())
    pins = [definition["dependencies"][k]["package_pip"] for k in ("ansible_core", "ansible_runner")]
    requirements = REPO / "requirements.txt"
    constraints = REPO / "tests" / "requirements.txt"
    wheels = WORK / "wheels"
    stamp = WORK / "wheels.sha256"
    want = digest(*pins, *BUILD_PACKAGES, requirements.read_text(), constraints.read_text())
    if wheels.is_dir() and stamp.is_file() and stamp.read_text() == want:
        log(f"wheelhouse up to date ({len(list(wheels.glob('*.whl')))} wheels)")
        return
    shutil.rmtree(wheels, ignore_errors=True)
    log("pip download into the wheelhouse")
    constraint_lines = [re.sub(r"\[.*\]", "", line) for line in constraints.read_text().splitlines()
                        if "==" in line and not line.startswith(("ansible-core", "ansible-runner"))]
    pinned = WORK / "constraints.txt"
    pinned.write_text("\n".join(constraint_lines) + "\n")
    run([str(REPO / ".venv" / "bin" / "pip"), "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--dest", str(wheels), "-c", str(pinned), "-r", str(requirements),
         *pins, *BUILD_PACKAGES])
    stamp.write_text(want)


def build_collection():
    """The collection tarball; returns the digest of its file list (MANIFEST.json names it), which changes with
    any file's content."""
    target = WORK / "collection"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    run([str(REPO / ".venv" / "bin" / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
         str(target), str(REPO)], stdout=subprocess.DEVNULL)
    (tarball,) = target.glob("rolesanywhere-fleet-*.tar.gz")
    tarball = tarball.rename(target / "rolesanywhere-fleet.tar.gz")
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    return manifest["file_manifest_file"]["chksum_sha256"]


def build_image(tag):
    context = WORK / "context"
    started = time.monotonic()
    log(f"ansible-builder build -> {tag}")
    with open(WORK / "build.log", "w") as out:
        proc = subprocess.run(
            [str(REPO / ".venv" / "bin" / "ansible-builder"), "build", "--file", str(DEFINITION),
             "--context", str(context), "--container-runtime", "podman", "--tag", tag, "--tag", f"{IMAGE}:latest",
             "--verbosity", "3", "--extra-build-cli-args=--network=none"],
            env=podman_env(), stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = (WORK / "build.log").read_text().splitlines()[-30:]
        raise SystemExit("ee: ansible-builder failed; last lines of .work/ee/build.log:\n" + "\n".join(tail))
    log(f"built {tag} in {time.monotonic() - started:.0f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when the image exists and holds the collection as it is now")
    args = parser.parse_args(argv)
    tag = image_tag()
    WORK.mkdir(parents=True, exist_ok=True)
    content = digest(build_collection(), DEFINITION.read_text())
    stamp = WORK / "image.sha256"
    if args.if_missing and image_exists(tag) and stamp.is_file() and stamp.read_text() == content:
        log(f"{tag} is up to date with the collection")
        return 0
    build_base()
    fill_wheelhouse()
    build_image(tag)
    stamp.write_text(content)
    podman("image", "prune", "--force")  # the builder's intermediate stages
    return 0


if __name__ == "__main__":
    sys.exit(main())
