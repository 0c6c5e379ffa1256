#!/usr/bin/env bash
# Prepare this machine for development, the tests and the demo (Debian 12, as root).
# Idempotent: installs only the Debian packages that are missing, creates .venv only if it
# does not exist, and pip-installs the project only when its metadata changed since the last
# run (or the install is broken).
#   mosquitto       the broker (tests start private ones; the demo starts one if none runs)
#   prometheus      prometheus + promtool for the rule tests and the dashboard test
#   python3-venv    `python3 -m venv` on Debian's python3
#   systemd         systemd-analyze for the unit tests (present on any Debian)
#   openssl         throwaway certificates for the mosquitto TLS test
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"

missing=()
[ -x /usr/sbin/mosquitto ] && [ -x /usr/bin/mosquitto_passwd ] || missing+=(mosquitto)
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || missing+=(prometheus)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v openssl >/dev/null || missing+=(openssl)
if ! command -v "$PYTHON" >/dev/null; then
    missing+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi

if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
        exit 1
    fi
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Recommends left out: prometheus would pull in the node exporter, which nothing here uses.
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: creating .venv"
    "$PYTHON" -m venv .venv
fi

# Reinstall when setup.cfg or pyproject.toml changed, or when the package is not importable.
stamp=.venv/.anomalyd-setup-stamp
wanted="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] \
        || ! .venv/bin/python -c 'import anomalyd.daemon.cli, pytest' 2>/dev/null; then
    echo "setup.sh: pip install -e '.[test]'"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$wanted" > "$stamp"
fi
echo "setup.sh: ready ($(.venv/bin/python --version), mosquitto, prometheus $(/usr/bin/prometheus --version 2>&1 | awk 'NR==1{print $3}'))"
