#!/usr/bin/env bash
# Create bench/.venv-peers with the peer scanners pinned in bench/requirements-peers.txt.
# Idempotent: an existing environment is reused, and pip only installs what is missing.
# The peers live apart from the product's .venv so that their dependencies never leak
# into mlwarden's environment (or the other way round).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
requirements="$here/requirements-peers.txt"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi

# Skip pip entirely when every pin is already satisfied (fast re-runs of `make bench`).
if "$venv/bin/python" - "$requirements" <<'PY'
import sys
from importlib import metadata

wanted = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if line:
        name, _, version = line.partition("==")
        wanted.append((name, version))
try:
    missing = [n for n, v in wanted if metadata.version(n) != v]
except metadata.PackageNotFoundError:
    sys.exit(1)
sys.exit(1 if missing else 0)
PY
then
    echo "bench/.venv-peers: peers already installed"
else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi

for tool in picklescan modelscan fickling modelaudit; do
    if [[ ! -x "$venv/bin/$tool" ]]; then
        echo "setup_peers: $tool did not install a command" >&2
        exit 1
    fi
done
"$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(picklescan|modelscan|fickling|modelaudit) ' || true
