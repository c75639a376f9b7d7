#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: a virtual environment in
# .venv with onionclean installed (editable), plus Debian packages when asked.
#   setup.sh            runtime only
#   setup.sh test       runtime + everything the tests and benchmarks need
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-run}
apt_runtime=(python3-venv tor)
apt_test=(libimage-exiftool-perl swaks postfix libjpeg-turbo-progs mat2 netcat-openbsd
          torsocks procps time)

need=()
missing() { ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
pkgs=("${apt_runtime[@]}")
[ "$want" = test ] && pkgs+=("${apt_test[@]}")
for p in "${pkgs[@]}"; do
    # python3-venv is only needed when this Python cannot make a venv by itself.
    if [ "$p" = python3-venv ] && python3 -m venv --help >/dev/null 2>&1 \
        && python3 -c 'import ensurepip' 2>/dev/null; then continue; fi
    missing "$p" && need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
extra=""; [ "$want" = test ] && extra="[test]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".${extra}"
