#!/usr/bin/env bash
# Command one: see anomalyd work, on a fresh Debian 12 machine, as root.
#   scripts/demo.sh                  # until Ctrl-C
#   scripts/demo.sh --duration 60    # any `anomalyd demo` option (see `anomalyd demo --help`)
#   ANOMALYD_DEMO_PORT=11883 scripts/demo.sh   # use/start the broker on another port
# Runs scripts/setup.sh, uses the MQTT broker on 127.0.0.1:1883 or starts a private one
# (deploy/mosquitto/mosquitto.conf adapted to a temporary directory), then `anomalyd demo`:
# the daemon and the simulator with a live view. Ctrl-C stops everything it started.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO/scripts/setup.sh"

HOST=127.0.0.1
PORT="${ANOMALYD_DEMO_PORT:-1883}"  # another port only to keep clear of a broker you do not want
BROKER_PID=""
WORK=""

reachable() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        echo "demo.sh: stopped the private broker"
    fi
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

if reachable; then
    echo "demo.sh: using the broker already running on $HOST:$PORT"
else
    WORK="$(mktemp -d /tmp/anomalyd-demo-broker.XXXXXX)"
    # The production config minus what a throwaway local broker does not need: persistence in
    # the temporary directory, anonymous clients on loopback (no password file, no ACL), no
    # conf.d includes (no TLS listener).
    sed -e "s|^persistence_location .*|persistence_location $WORK/|" \
        -e "s|^allow_anonymous .*|allow_anonymous true|" \
        -e "/^password_file /d" -e "/^acl_file /d" -e "/^include_dir /d" \
        -e "s|^listener 1883 127.0.0.1$|listener $PORT $HOST|" \
        "$REPO/deploy/mosquitto/mosquitto.conf" > "$WORK/mosquitto.conf"
    if id mosquitto >/dev/null 2>&1; then
        chown -R mosquitto "$WORK"   # started as root, mosquitto runs as user mosquitto
    else
        echo "user root" >> "$WORK/mosquitto.conf"
    fi
    /usr/sbin/mosquitto -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do
        reachable && break
        kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/mosquitto.log" >&2; BROKER_PID=""; exit 1; }
        sleep 0.1
    done
    reachable || { echo "demo.sh: the private broker did not start" >&2; cat "$WORK/mosquitto.log" >&2; exit 1; }
    echo "demo.sh: started a private broker on $HOST:$PORT (pid $BROKER_PID)"
fi

status=0
"$REPO/.venv/bin/anomalyd" demo --broker "mqtt://$HOST:$PORT" "$@" || status=$?
exit "$status"
