"""A worker process for the exactness tests: many calls on one budget, then print the count.

python -m tests.budgets.hammer sqlite|redis TARGET ATTEMPTS START_AT
"""

from __future__ import annotations

import sys
import time

from mlwarden.budgets import BudgetPolicy, BudgetStore, Limits, Period, SQLiteStore

QUOTA = 1000
NOW = 1_800_000_000.0  # a fixed instant: the window cannot roll over during the test


def main(argv: list[str]) -> int:
    kind, target, attempts, start_at = argv[0], argv[1], int(argv[2]), float(argv[3])
    policy = BudgetPolicy.uniform(Limits(quota=QUOTA, period=Period.DAY))
    store: BudgetStore
    if kind == "sqlite":
        from pathlib import Path

        store = SQLiteStore(Path(target), policy, busy_timeout=30)
    else:
        from mlwarden.budgets import RedisStore

        store = RedisStore(target, policy, timeout=5)
    # Start together, so the processes really contend for the same counter.
    time.sleep(max(0.0, start_at - time.time()))
    allowed = unavailable = 0
    for _ in range(attempts):
        decision = store.consume("alice", "iris", now=NOW)
        allowed += decision.allowed
        unavailable += decision.code == "E403"
    store.close()
    sys.stdout.write(f"{allowed} {unavailable}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
