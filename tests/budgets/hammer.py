"""A worker process for the exactness tests: many calls on one budget, then print the count.

python -m tests.budgets.hammer sqlite|sqlite-async|redis TARGET ATTEMPTS START_AT

`sqlite-async` makes the calls with `aconsume`, 32 at a time on one event loop, so that
the group commits of several processes contend for the file.
"""

from __future__ import annotations

import asyncio
import sys
import time

from mlwarden.budgets import BudgetDecision, BudgetPolicy, BudgetStore, Limits, Period, SQLiteStore

QUOTA = 1000
NOW = 1_800_000_000.0  # a fixed instant: the window cannot roll over during the test


def main(argv: list[str]) -> int:
    kind, target, attempts, start_at = argv[0], argv[1], int(argv[2]), float(argv[3])
    policy = BudgetPolicy.uniform(Limits(quota=QUOTA, period=Period.DAY))
    store: BudgetStore
    if kind in ("sqlite", "sqlite-async"):
        from pathlib import Path

        store = SQLiteStore(Path(target), policy, busy_timeout=30)
    else:
        from mlwarden.budgets import RedisStore

        store = RedisStore(target, policy, timeout=5)
    # Start together, so the processes really contend for the same counter.
    time.sleep(max(0.0, start_at - time.time()))
    allowed = unavailable = 0
    if kind == "sqlite-async":
        decisions = asyncio.run(_concurrently(store, attempts))
    else:
        decisions = [store.consume("alice", "iris", now=NOW) for _ in range(attempts)]
    for decision in decisions:
        allowed += decision.allowed
        unavailable += decision.code == "E403"
    store.close()
    sys.stdout.write(f"{allowed} {unavailable}\n")
    return 0


async def _concurrently(store: BudgetStore, attempts: int) -> list[BudgetDecision]:
    decisions: list[BudgetDecision] = []

    async def caller(calls: int) -> None:
        for _ in range(calls):
            decisions.append(await store.aconsume("alice", "iris", now=NOW))

    callers = 32
    await asyncio.gather(
        *(caller(attempts // callers + (n < attempts % callers)) for n in range(callers))
    )
    return decisions


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
