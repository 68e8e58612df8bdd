#!/usr/bin/env bash
# Create bench/.venv-art with ART (adversarial-robustness-toolbox) for the data-screen
# baselines in bench/data_screen.py and the attack baselines in bench/assess_vs_art.py
# (those need torch, pinned and CPU-only exactly as in mlwarden's .venv). ART stays out of
# mlwarden's .venv so that its pins never leak into the product's environment.
# Idempotent: an existing environment is reused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-art"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import art.defences.detector.poison, torch" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements-art.txt"
fi
"$venv/bin/python" -c "import art; print('bench/.venv-art: ART', art.__version__)"
