#!/usr/bin/env bash
# Install anomalyd as a systemd service from this source checkout (Debian 12, as root):
#   scripts/install-service.sh [--now] [--dry-run] [--root DIR] [--venv DIR] [--user NAME]
# Creates the virtualenv (default /opt/anomalyd/venv) with this checkout pip-installed, then
# runs `anomalyd install-service` from it: system user, /etc/anomalyd/config.yaml (commented
# defaults, never overwritten), the unit, daemon-reload, enable (--now: and start).
# --dry-run changes nothing and prints the plan.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=/opt/anomalyd/venv
ROOT=/
DRY_RUN=0
args=("$@")
while (($#)); do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --root) ROOT="$2"; shift ;;
        --root=*) ROOT="${1#*=}" ;;
        --venv) VENV="$2"; shift ;;
        --venv=*) VENV="${1#*=}" ;;
    esac
    shift
done
TARGET="${ROOT%/}$VENV"
FROM_HERE=(install-service --source "$REPO" --unit-file "$REPO/systemd/anomalyd.service")

if ((DRY_RUN)); then
    # The plan comes from the installer itself, run from any existing installation.
    for candidate in "$TARGET/bin/anomalyd" "$REPO/.venv/bin/anomalyd"; do
        if [ -x "$candidate" ]; then
            exec "$candidate" "${FROM_HERE[@]}" "${args[@]}"
        fi
    done
    echo "would create $TARGET, pip install $REPO into it and run 'anomalyd install-service' from it"
    echo "(run scripts/setup.sh first to see the installer's detailed plan)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-service.sh: run as root" >&2
    exit 1
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
if [ ! -x "$TARGET/bin/python" ]; then
    echo "install-service.sh: python3 -m venv $TARGET"
    python3 -m venv "$TARGET"
fi
echo "install-service.sh: pip install $REPO into $TARGET"
"$TARGET/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$REPO"
# The virtualenv is done: the installer does the rest.
exec "$TARGET/bin/anomalyd" "${FROM_HERE[@]}" --skip-venv "${args[@]}"
