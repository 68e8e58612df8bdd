"""`mlwarden` with the gateway's scikit-learn fast path turned off, for bench/gateway_load.py.

    .venv/bin/python bench/_gateway_sklearn_path.py serve --config mlwarden.yaml ...

The same command line as `mlwarden`, except that every scikit-learn model the gateway loads
answers through the estimator's own `predict_proba`, as the bare baseline does: the run
then measures what the controls cost by themselves. The switch is the adapter's
`fast_path` keyword, whose default this launcher changes before the CLI starts.
"""

from __future__ import annotations

import sys

from mlwarden.cli import main
from mlwarden.gateway._models import load_model

defaults = load_model.__kwdefaults__
if defaults is None or "sklearn_fast_path" not in defaults:
    raise SystemExit("load_model has no sklearn_fast_path keyword: the launcher is out of date")
defaults["sklearn_fast_path"] = False

if __name__ == "__main__":
    sys.exit(main())
