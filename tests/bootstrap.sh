#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian 12 machine (as root):
# apt packages, the pinned venv in .venv, and the base image for the local test fleet.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  softhsm2 opensc gnutls-bin p11-kit p11-kit-modules
  swtpm swtpm-tools tpm2-tools tpm2-abrmd libtpm2-pkcs11-1 libtpm2-pkcs11-tools libtss2-tcti-tabrmd0 dbus
  openssl openssh-client openssh-server iproute2 nftables debootstrap systemd-container
  prometheus chromium podman runc gcc binutils
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ] || ! cmp -s tests/requirements.txt .venv/.requirements.txt; then
  echo "bootstrap: creating .venv from tests/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/.requirements.txt
fi

# The collection must be importable as ansible_collections.rolesanywhere.fleet for modules and tests.
mkdir -p .work/collections/ansible_collections/rolesanywhere
ln -sfn "$PWD" .work/collections/ansible_collections/rolesanywhere/fleet

if [ -x tests/fleet/build_base_image.sh ]; then
  tests/fleet/build_base_image.sh
fi
