"""Runtime detectors: what they add to the gateway's latency, side by side in one run.

    .venv/bin/python bench/detect_overhead.py [--rounds 3] [--seconds 5] [--concurrency 16]
        [--max-requests 50000] [--signals extraction,adversarial,probing] [--batch-seconds S]
        [--json]

Two gateways run at once, each `mlwarden serve` (one uvicorn worker on 127.0.0.1) with
every control on, built by bench/gateway_load.py's `prepare` (JWT per connection for 16
identities, Cedar, budgets in SQLite, the audit log, the input guard, the top-1 label):

- off: no `detectors:` section;
- on:  the same, plus detectors on the digits model (extraction, probing and adversarial
       signals with feature squeezing): the reference fitted on the training split with
       `fit_reference` and signed; state per (identity, model) in the budgets' SQLite file.
       Responses are `alert` only, so every call is answered and timed: the load
       generator repeats one row per identity, which the probing detector rightly flags.

The load generator and measurement are gateway_load.py's (`measure`: raw keep-alive
HTTP/1.1, one request in flight per connection, one-second warm-up). Rounds interleave
the two gateways (order alternating); figures are medians over rounds. Besides latency,
the server's CPU per request (whole process, /proc) and the event loop thread's part of
it (/proc/PID/task), which a shared machine disturbs far less than p50. The goal: the
detectors add under 0.5 ms to p50 at concurrency 16. Only 127.0.0.1 is contacted;
everything generated goes to bench/.work/detect/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK
from gateway_load import Material, Server, measure, prepare, request_bytes, start_gateway


def add_detectors(material: Material, signals: list[str], batch_seconds: float | None) -> None:
    """Fit, save and sign the digits reference; add the `detectors:` section."""
    import joblib
    import numpy as np
    import yaml
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from mlwarden.detect import fit_reference
    from mlwarden.signing import sign

    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    model = joblib.load(material.model)  # trained by prepare() in this run
    reference = fit_reference(
        x_train,
        y_train.astype(np.int64),
        predict_proba=model.predict_proba,
        image_shape=(8, 8),
        value_range=(0.0, 16.0),
    )
    path = material.folder / "digits.ref"
    reference.save(path)
    sign(path, key=material.folder / "signer.pem")
    config = yaml.safe_load(material.config.read_text())
    config["detectors"] = {
        "models": {
            "digits": {
                "reference": path.name,
                "signature": [path.name + ".sig"],
                "signals": signals,
                "responses": dict.fromkeys(signals, "alert"),
            }
        }
    }
    if batch_seconds is not None:
        config["detectors"]["batch_seconds"] = batch_seconds
    material.config.write_text(yaml.safe_dump(config, sort_keys=False))


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, all live threads) CPU seconds of a server process, from /proc. The
    main thread runs the event loop, i.e. the serving path; the others are the worker
    threads (detector scoring, store writes, audit) and BLAS pools."""
    tick = os.sysconf("SC_CLK_TCK")
    main = total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        total += cpu
        if task.name == str(pid):
            main = cpu
    return main, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--signals",
        default="extraction,adversarial,probing",
        help="the signals on (adversarial adds feature squeezing: the model runs again)",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="detectors.batch_seconds (default: the product's): longer gathers bigger batches",
    )
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    work = WORK / "detect"
    off = prepare(work / "off", budget_store="sqlite")
    on = prepare(work / "on", budget_store="sqlite")
    add_detectors(on, args.signals.split(","), args.batch_seconds)
    servers: dict[str, Server] = {}
    try:
        servers["off"] = start_gateway(off, off.folder)
        servers["on"] = start_gateway(on, on.folder)
        requests = {
            name: [
                request_bytes(server.port, row, token)
                for row, token in zip(material.rows, material.tokens, strict=True)
            ]
            for (name, server), material in zip(servers.items(), (off, on), strict=True)
        }
        results: dict[str, list[Any]] = {"off": [], "on": []}
        loop_cpu: dict[str, list[float]] = {"off": [], "on": []}
        for round_index in range(args.rounds):
            order = ["off", "on"] if round_index % 2 == 0 else ["on", "off"]
            for name in order:
                before = thread_cpu(servers[name].proc.pid)
                m = measure(
                    servers[name],
                    requests[name],
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    max_requests=args.max_requests,
                )
                after = thread_cpu(servers[name].proc.pid)
                if set(m.statuses) != {"200"}:
                    raise SystemExit(f"{name}: not every call succeeded: {m.statuses}")
                results[name].append(m)
                # The event loop's share of the process CPU (warm-up included on both
                # sides of the ratio), applied to the measured CPU per request.
                share = (after[0] - before[0]) / max(after[1] - before[1], 1e-9)
                loop_cpu[name].append(share * m.cpu_us_per_request)
    finally:
        for server in servers.values():
            server.stop()

    def med(name: str, field: str) -> float:
        return statistics.median(getattr(m, field) for m in results[name])

    rows = []
    for field in ("p50_ms", "p99_ms", "rps", "cpu_us_per_request"):
        a, b = med("off", field), med("on", field)
        rows.append((field, a, b, b - a, b / a if a else float("nan")))
    a, b = statistics.median(loop_cpu["off"]), statistics.median(loop_cpu["on"])
    rows.append(("loop_cpu_us_per_req", a, b, b - a, b / a if a else float("nan")))
    record = {
        "date": datetime.date.today().isoformat(),
        "concurrency": args.concurrency,
        "signals": args.signals,
        "batch_seconds": args.batch_seconds,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "rows": rows,
        "raw": {k: [dataclasses.asdict(m) for m in v] for k, v in results.items()},
        "loop_cpu_us_per_request": loop_cpu,
    }
    (WORK / "detect_overhead.json").write_text(json.dumps(record, indent=1, default=str))
    if args.json:
        print(json.dumps(record, indent=1, default=str))
        return
    print(f"gateway with detectors off vs on, concurrency {args.concurrency}, "
          f"{args.rounds} rounds x {args.seconds} s (medians); signals {args.signals}; "
          f"batch_seconds {args.batch_seconds or 'default'}")  # fmt: skip
    print(f"{'metric':<20}{'off':>12}{'on':>12}{'added':>12}{'ratio':>8}")
    for field, a, b, added, ratio in rows:
        print(f"{field:<20}{a:>12.3f}{b:>12.3f}{added:>+12.3f}{ratio:>8.2f}")
    added_p50 = rows[0][3]
    verdict = "met" if added_p50 < 0.5 else "NOT met"
    print(f"added p50: {added_p50:.3f} ms (goal < 0.5 ms: {verdict})")


if __name__ == "__main__":
    main()
