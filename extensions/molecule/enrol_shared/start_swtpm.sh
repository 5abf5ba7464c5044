#!/bin/sh
# A software TPM with a resource manager on a test host (molecule scenario tpm): swtpm on the host's own
# loopback, a private D-Bus bus any local user may use, tpm2-abrmd on it. The processes live in the host's
# PID namespace and end with the host.
set -eu
dir=/run/swtpm
mkdir -p "$dir/state"
swtpm socket --tpm2 --tpmstate dir="$dir/state" \
  --server type=tcp,port=2321,bindaddr=127.0.0.1 --ctrl type=tcp,port=2322,bindaddr=127.0.0.1 \
  --flags not-need-init,startup-clear --daemon --pid file="$dir/swtpm.pid" --log file="$dir/swtpm.log",level=1
cat > "$dir/dbus.conf" <<'CONF'
<busconfig>
  <type>session</type>
  <listen>unix:path=/run/swtpm/dbus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$dir/dbus.conf" --fork --print-pid > "$dir/dbus.pid"
DBUS_SESSION_BUS_ADDRESS=unix:path=$dir/dbus.sock setsid tpm2-abrmd --session --allow-root --flush-all \
  --tcti "swtpm:host=127.0.0.1,port=2321" > "$dir/abrmd.log" 2>&1 < /dev/null &
echo $! > "$dir/abrmd.pid"
for _ in $(seq 50); do
  DBUS_SESSION_BUS_ADDRESS=unix:path=$dir/dbus.sock dbus-send --session --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.ListNames 2>/dev/null | grep -q com.intel.tss2.Tabrmd && exit 0
  sleep 0.1
done
echo "tpm2-abrmd did not register on the bus" >&2
cat "$dir/abrmd.log" >&2
exit 1
