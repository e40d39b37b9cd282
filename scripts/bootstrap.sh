#!/usr/bin/env bash
# Creates the virtual environment and installs what provsync and its tests need.
# Idempotent and quick when nothing changed: `make run` and `make test` call it every time.
#
#   scripts/bootstrap.sh          runtime only
#   scripts/bootstrap.sh --dev    plus test tools (pytest, ruff, mypy) and the real peers the
#                                 tests talk to (net-snmp, smitools, rsyslog)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

pick_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [[ -z "$candidate" ]] && continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "provsync needs Python >= 3.11 (set PYTHON=/path/to/python3)" >&2
    return 1
}

install_debian_packages() {
    # Tests use the programs NOC engineers run; install them when they are missing.
    local missing=()
    command -v snmpget >/dev/null 2>&1 || missing+=(snmp)
    command -v snmptrapd >/dev/null 2>&1 || [[ -x /usr/sbin/snmptrapd ]] || missing+=(snmptrapd)
    # snmpd is the anchor of bench/snmp.py
    command -v snmpd >/dev/null 2>&1 || [[ -x /usr/sbin/snmpd ]] || missing+=(snmpd)
    command -v smilint >/dev/null 2>&1 || missing+=(smitools)
    command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
    [[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so || -e /usr/lib/rsyslog/lmnsd_gtls.so ]] ||
        compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || missing+=(rsyslog-gnutls)
    compgen -G "/usr/lib/*/rsyslog/imrelp.so" >/dev/null ||
        [[ -e /usr/lib/rsyslog/imrelp.so ]] || missing+=(rsyslog-relp)
    # The web console's browser tests drive a real headless Chromium.
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    ((${#missing[@]} == 0)) && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "warning: missing ${missing[*]} and no apt-get; install them by hand" >&2
        return 0
    fi
    local sudo=""
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

python="$(pick_python)"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "creating virtual environment in $VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

extras=""
((DEV)) && extras="[dev]"
stamp="$VENV/.provsync-installed$extras"
digest="$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "installing provsync$extras into $VENV"
    "$VENV/bin/python" -m pip install -q -e ".$extras"
    echo "$digest" >"$stamp"
fi

((DEV)) && install_debian_packages
exit 0
