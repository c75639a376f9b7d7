#!/usr/bin/env bash
# Install onionclean and run it. With no arguments it starts the service
# (`onionclean serve`); any arguments are passed to the `onionclean` command,
# e.g. `bash scripts/run.sh clean photo.jpg -o out/`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
if [ $# -eq 0 ]; then set -- serve; fi
exec .venv/bin/onionclean "$@"
