#!/usr/bin/env bash
# Builds the local test fleet's base roots -- one per Debian release hosts can run: bullseye (11), bookworm (12)
# and trixie (13), each minbase + every package the collection's roles install on hosts -- and one flat
# wheelhouse of the Python packages hosts install with pip, for every host Python (3.9, 3.11, 3.13), so that
# hosts, which have no network, never need a mirror. Cached: an image is rebuilt only when its package list changes.
#
# Usage: build_base_image.sh [RELEASE...]        (default: all three, built in parallel)
#
# Output (all under .work/, ignored by git):
#   .work/fleet/base/rootfs, packages.sha256          bookworm (the default release; path kept from before)
#   .work/fleet/base/RELEASE/rootfs, packages.sha256  bullseye, trixie
#   .work/wheelhouse/                                 wheels for CPython 3.9, 3.11 and 3.13 (HOST_WHEELS_* below)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

RELEASES=(bullseye bookworm trixie)
VARIANT=minbase
# Every package a role installs on a host. Keep in sync with the roles' apt tasks.
HOST_PACKAGES=(
  python3 python3-venv python3-pip python3-cryptography openssh-server sudo ca-certificates openssl
  softhsm2 opensc p11-kit p11-kit-modules gnutls-bin swtpm swtpm-tools tpm2-tools tpm2-abrmd
  libtpm2-pkcs11-1 libtpm2-pkcs11-tools libtss2-tcti-tabrmd0 dbus systemd systemd-sysv awscli iproute2
  procps cron prometheus-node-exporter
)
# Per-release differences from HOST_PACKAGES ("old=new" renames, "old=" drops).
#   bullseye: swtpm entered Debian with bookworm (so no TPM hosts on bullseye).
RELEASE_CHANGES_bullseye=(swtpm= swtpm-tools=)
RELEASE_CHANGES_bookworm=()
RELEASE_CHANGES_trixie=()
# debootstrap does not resolve virtual packages: name their providers (python3-ply provides the
# python3-ply-lex-3.10/python3-ply-yacc-3.10 that python3-pycparser, via libtpm2-pkcs11-tools, needs).
VIRTUAL_PROVIDERS=(python3-ply)
# bullseye: python3-cryptography needs python3-cffi-backend-api-min/max, provided by python3-cffi-backend.
VIRTUAL_PROVIDERS_bullseye=(python3-cffi-backend)
# Hosts' Pythons: bullseye 3.9, bookworm 3.11, trixie 3.13. cryptography comes from the wheelhouse too (Debian's
# python3-cryptography is too old on 11/12; the roles install into an isolated virtualenv). python-pkcs11 0.10
# needs Python 3.10: 3.9 gets 0.9.4 (and cryptography needs typing-extensions there). One pycparser for all
# (3.x needs Python 3.10), so the flat directory never offers pip a wheel its Python cannot use.
HOST_WHEELS_cp39=(python-pkcs11==0.9.4 asn1crypto==1.5.1 cryptography==50.0.2 cffi==2.0.0 pycparser==2.23
                  typing-extensions==4.16.0)
HOST_WHEELS_cp311=(python-pkcs11==0.10.1 asn1crypto==1.5.1 cryptography==50.0.2 cffi==2.1.1 pycparser==2.23)
HOST_WHEELS_cp313=(python-pkcs11==0.10.1 asn1crypto==1.5.1 cryptography==50.0.2 cffi==2.1.1 pycparser==2.23)
# The exact interpreter version pip resolves for (Requires-Python like "!=3.9.0,!=3.9.1" needs the micro).
HOST_PYTHON_cp39=3.9.2
HOST_PYTHON_cp311=3.11.2
HOST_PYTHON_cp313=3.13.5
# Bump when the post-processing below changes, to force a rebuild.
IMAGE_REVISION=2

WHEELHOUSE=$REPO/.work/wheelhouse

base_dir() {  # bookworm keeps the path it had before there were several releases
  if [ "$1" = bookworm ]; then echo "$REPO/.work/fleet/base"; else echo "$REPO/.work/fleet/base/$1"; fi
}

release_packages() {
  local release=$1 pkg change changes_var
  changes_var="RELEASE_CHANGES_${release}[@]"
  for pkg in "${HOST_PACKAGES[@]}"; do
    for change in "${!changes_var}"; do
      if [ "${change%%=*}" = "$pkg" ]; then pkg=${change#*=}; break; fi
    done
    [ -n "$pkg" ] && echo "$pkg"
  done
  return 0
}

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
  local release=$1 base rootfs stamp uri want have new packages providers_var
  base=$(base_dir "$release")
  rootfs=$base/rootfs
  stamp=$base/packages.sha256
  mapfile -t packages < <(release_packages "$release")
  providers_var="VIRTUAL_PROVIDERS_${release}[@]"
  packages+=(${!providers_var+"${!providers_var}"})
  uri=$(mirror)
  want=$(printf '%s\n' "$release" "$VARIANT" "$IMAGE_REVISION" "${packages[@]}" "${VIRTUAL_PROVIDERS[@]}" | sha256sum | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ -d "$rootfs" ] && [ "$want" = "$have" ]; then
    echo "build_base_image: $release image up to date ($rootfs)"
    return
  fi
  if [ -d "$rootfs" ] && fleet_hosts_running; then
    echo "build_base_image: fleet hosts are running (maybe on the old $release image); run 'tests/fleet/netns_fleet.py down' first" >&2
    exit 1
  fi
  mkdir -p "$base"
  new=$base/rootfs.new
  rm -rf "$new"
  echo "build_base_image: debootstrap --variant=$VARIANT $release from $uri (${#packages[@]} packages + deps)"
  local started=$SECONDS
  mkdir -p "$base/debs"  # keeps downloaded .debs, so a rebuild on this machine downloads nothing
  debootstrap --variant="$VARIANT" --cache-dir="$base/debs" \
    --include="$(IFS=,; echo "${packages[*]} ${VIRTUAL_PROVIDERS[*]}" | tr ' ' ,)" \
    "$release" "$new" "$uri" > "$base/debootstrap.log" 2>&1 || {
      echo "build_base_image: debootstrap $release failed, last lines of $base/debootstrap.log:" >&2
      tail -n 20 "$base/debootstrap.log" >&2
      exit 1
    }
  echo "build_base_image: debootstrap $release done in $((SECONDS - started)) s"

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

  rm -rf "$rootfs"
  mv "$new" "$rootfs"
  echo "$want" > "$stamp"
  echo "build_base_image: $release image ready: $rootfs ($(du -sh "$rootfs" | cut -f1), $(chroot "$rootfs" dpkg-query -f '.\n' -W | wc -l) packages)"
}

build_wheelhouse() {
  local want have pip abi wheels_var python_var
  want=$(for abi in cp39 cp311 cp313; do
           wheels_var="HOST_WHEELS_${abi}[@]"; python_var="HOST_PYTHON_${abi}"
           printf '%s\n' "$abi" "${!python_var}" "${!wheels_var}"
         done | sha256sum | cut -d' ' -f1)
  have=$(cat "$WHEELHOUSE/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    echo "build_base_image: wheelhouse up to date ($WHEELHOUSE)"
    return
  fi
  pip="python3 -m pip"
  [ -x "$REPO/.venv/bin/python" ] && pip="$REPO/.venv/bin/python -m pip"
  # .work/wheelhouse may be a symlink (worktrees share one): empty the directory it names, never replace it.
  mkdir -p "$WHEELHOUSE/"
  find "$WHEELHOUSE/" -mindepth 1 -maxdepth 1 -name '*.whl' -type f -delete
  rm -f "$WHEELHOUSE/.requirements.sha256"
  for abi in cp39 cp311 cp313; do
    wheels_var="HOST_WHEELS_${abi}[@]"; python_var="HOST_PYTHON_${abi}"
    echo "build_base_image: pip download ${!wheels_var} for CPython ${!python_var} into $WHEELHOUSE"
    $pip download -q --disable-pip-version-check --dest "$WHEELHOUSE/" --only-binary=:all: \
      --implementation cp --python-version "${!python_var}" --abi "$abi" --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform any "${!wheels_var}"
  done
  echo "$want" > "$WHEELHOUSE/.requirements.sha256"
  echo "build_base_image: wheelhouse ready: $(ls "$WHEELHOUSE/" | tr '\n' ' ')"
}

requested=("$@")
[ "${#requested[@]}" -gt 0 ] || requested=("${RELEASES[@]}")
for release in "${requested[@]}"; do
  case " ${RELEASES[*]} " in
    *" $release "*) ;;
    *) echo "build_base_image: unknown release '$release' (known: ${RELEASES[*]})" >&2; exit 2 ;;
  esac
done
build_wheelhouse
# The images build in parallel (debootstrap mostly waits on downloads and dpkg); each prints its own lines.
pids=()
for release in "${requested[@]}"; do
  build_rootfs "$release" &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
