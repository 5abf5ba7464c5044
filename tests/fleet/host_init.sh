#!/bin/sh
# Runs inside a fleet host's new namespaces (started by netns_fleet.py, never by hand):
#   sshd mode:    PID 1 of the host's pid namespace; mounts the root and execs sshd through fleet-init
#   systemd mode: (in the machine's network namespace) mounts the root and execs systemd-nspawn --boot
#                 joined to the host's network namespace
# Usage: host_init.sh sshd|systemd NAME HOSTDIR LOWERDIRS NETNS
set -eu
mode=$1 name=$2 hostdir=$3 lower=$4 netns=$5
root=$hostdir/merged

# Our PID as the supervisor sees it. The shell opens the file itself (a child such as awk reading
# /proc/self would report its own PID); NSpid's first field is the PID in the outermost namespace.
exec 3</proc/self/status
while read -r key outer _rest <&3; do
  if [ "$key" = "NSpid:" ]; then echo "$outer" > "$hostdir/pid.new"; break; fi
done
exec 3<&-

mount -t overlay overlay -o "lowerdir=$lower,upperdir=$hostdir/upper,workdir=$hostdir/work" "$root"

if [ "$mode" = systemd ]; then
  mv "$hostdir/pid.new" "$hostdir/pid"
  exec systemd-nspawn --quiet --register=no --keep-unit --boot --directory="$root" --machine="$netns" \
    --network-namespace-path="/run/netns/$netns" \
    --hostname="$name" --resolv-conf=off --timezone=off --link-journal=no --console=read-only
fi

echo "$name" > /proc/sys/kernel/hostname   # this uts namespace only
mount -t proc proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
mount -t tmpfs -o mode=755,nosuid tmpfs "$root/dev"
for node in "null c 1 3" "zero c 1 5" "full c 1 7" "random c 1 8" "urandom c 1 9" "tty c 5 0"; do
  set -- $node
  mknod -m 666 "$root/dev/$1" "$2" "$3" "$4"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mv "$hostdir/pid.new" "$hostdir/pid"
exec chroot "$root" /usr/local/sbin/fleet-init
