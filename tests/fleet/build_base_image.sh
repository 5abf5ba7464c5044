#!/usr/bin/env bash
# Builds the local test fleet's base root (Debian bookworm, minbase + every package the collection's roles
# install on hosts) and a wheelhouse of the Python packages hosts install with pip, so that hosts, which have
# no network, never need a mirror. Cached: a rebuild happens only when the package list changes.
#
# Output (all under .work/, ignored by git):
#   .work/fleet/base/rootfs         the image (overlay lower layer of every fleet host)
#   .work/fleet/base/packages.sha256  hash of what the image was built from
#   .work/wheelhouse/               wheels for the hosts' Python 3.11 (HOST_WHEELS below)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

SUITE=bookworm
VARIANT=minbase
# Every package a role installs on a host. Keep in sync with the roles' apt tasks.
HOST_PACKAGES=(
  python3 python3-venv python3-pip python3-cryptography openssh-server sudo ca-certificates openssl
  softhsm2 opensc p11-kit p11-kit-modules gnutls-bin swtpm swtpm-tools tpm2-tools tpm2-abrmd
  libtpm2-pkcs11-1 libtpm2-pkcs11-tools libtss2-tcti-tabrmd0 dbus systemd systemd-sysv awscli iproute2
  procps cron prometheus-node-exporter
)
# debootstrap does not resolve virtual packages: name their providers (python3-ply provides the
# python3-ply-lex-3.10/python3-ply-yacc-3.10 that python3-pycparser, via libtpm2-pkcs11-tools, needs).
VIRTUAL_PROVIDERS=(python3-ply)
# Hosts' Python is Debian's 3.11. cryptography comes from the wheelhouse too: Debian 12's python3-cryptography
# (38) lacks APIs the collection's host-side code uses (the roles install into an isolated virtualenv).
HOST_WHEELS=(python-pkcs11==0.10.1 asn1crypto==1.5.1 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12)
# Bump when the post-processing below changes, to force a rebuild.
IMAGE_REVISION=2

BASE=$REPO/.work/fleet/base
ROOTFS=$BASE/rootfs
STAMP=$BASE/packages.sha256
WHEELHOUSE=$REPO/.work/wheelhouse

# The machine's configured Debian mirror (deb822 sources first, then the classic list).
mirror() {
  local uri
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "${uri:-}" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

fleet_hosts_running() {
  ip netns list 2>/dev/null | awk '{ print $1 }' | grep -Eq '^fl[0-9]{3}$'
}

build_rootfs() {
  local uri want have new
  uri=$(mirror)
  want=$(printf '%s\n' "$SUITE" "$VARIANT" "$IMAGE_REVISION" "${HOST_PACKAGES[@]}" "${VIRTUAL_PROVIDERS[@]}" | sha256sum | cut -d' ' -f1)
  have=$(cat "$STAMP" 2>/dev/null || true)
  if [ -d "$ROOTFS" ] && [ "$want" = "$have" ]; then
    echo "build_base_image: base image up to date ($ROOTFS)"
    return
  fi
  if fleet_hosts_running; then
    echo "build_base_image: fleet hosts are running on the old image; run 'tests/fleet/netns_fleet.py down' first" >&2
    exit 1
  fi
  mkdir -p "$BASE"
  new=$BASE/rootfs.new
  rm -rf "$new"
  echo "build_base_image: debootstrap --variant=$VARIANT $SUITE from $uri (${#HOST_PACKAGES[@]} packages + deps)"
  local started=$SECONDS
  mkdir -p "$BASE/debs"  # keeps downloaded .debs, so a rebuild on this machine downloads nothing
  debootstrap --variant="$VARIANT" --cache-dir="$BASE/debs" \
    --include="$(IFS=,; echo "${HOST_PACKAGES[*]} ${VIRTUAL_PROVIDERS[*]}" | tr ' ' ,)" \
    "$SUITE" "$new" "$uri" > "$BASE/debootstrap.log" 2>&1 || {
      echo "build_base_image: debootstrap failed, last lines of $BASE/debootstrap.log:" >&2
      tail -n 20 "$BASE/debootstrap.log" >&2
      exit 1
    }
  echo "build_base_image: debootstrap done in $((SECONDS - started)) s"

  # Offline hosts: drop downloaded .debs and package lists (about 90 MB), and anything machine-specific that
  # the build inherited. Host keys, hostname, hosts and resolv.conf are written per host at start.
  rm -f "$new"/var/cache/apt/archives/*.deb "$new"/var/cache/apt/*.bin
  rm -rf "$new"/var/lib/apt/lists/*
  rm -f "$new"/etc/ssh/ssh_host_*
  : > "$new/etc/resolv.conf"
  echo localhost > "$new/etc/hostname"
  printf '127.0.0.1\tlocalhost\n' > "$new/etc/hosts"
  : > "$new/etc/machine-id"
  # No TPM device on fleet hosts: tests start swtpm and their own tpm2-abrmd, so the stock unit stays off.
  rm -f "$new"/etc/systemd/system/*.wants/tpm2-abrmd.service
  # node_exporter is started by the monitoring tests on the bridge address only, never at boot.
  rm -f "$new"/etc/systemd/system/*.wants/prometheus-node-exporter*
  # Nothing to do on an offline host; these only fail or wait at boot under systemd-nspawn.
  for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    rm -f "$new/etc/systemd/system/timers.target.wants/$unit"
  done

  rm -rf "$ROOTFS"
  mv "$new" "$ROOTFS"
  echo "$want" > "$STAMP"
  echo "build_base_image: image ready: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1), $(chroot "$ROOTFS" dpkg-query -f '.\n' -W | wc -l) packages)"
}

build_wheelhouse() {
  local want have pip
  want=$(printf '%s\n' cp311 "${HOST_WHEELS[@]}" | sha256sum | cut -d' ' -f1)
  have=$(cat "$WHEELHOUSE/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "build_base_image: wheelhouse up to date ($WHEELHOUSE)"
    return
  fi
  pip="python3 -m pip"
  [ -x "$REPO/.venv/bin/python" ] && pip="$REPO/.venv/bin/python -m pip"
  echo "build_base_image: pip download ${HOST_WHEELS[*]} for CPython 3.11 into $WHEELHOUSE"
  rm -rf "$WHEELHOUSE"
  mkdir -p "$WHEELHOUSE"
  $pip download -q --disable-pip-version-check --dest "$WHEELHOUSE" --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any "${HOST_WHEELS[@]}"
  echo "$want" > "$WHEELHOUSE/.requirements.sha256"
  echo "build_base_image: wheelhouse ready: $(ls "$WHEELHOUSE" | tr '\n' ' ')"
}

build_wheelhouse
build_rootfs
