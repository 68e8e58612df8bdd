"""The demo's part: a backdoored update that verifies is still refused; an honest one passes."""

from __future__ import annotations

import re
from pathlib import Path

from mlwarden.update import UpdateConfig
from mlwarden.update.demo import run_update_demo


def test_backdoored_update_verifies_and_is_refused(tmp_path: Path) -> None:
    demo = run_update_demo(tmp_path)
    assert demo.problems == ()
    text = "\n".join(demo.lines)
    assert "its signature by the demo key verifies: True" in text
    assert "v1 -> v2-honest: passed" in text
    assert "v1 -> v2-backdoored: REFUSED (UPD009)" in text
    assert "UPD009: class 7:" in text
    # A clear margin, not a near miss: the index is well past twice the policy's threshold.
    match = re.search(r"anomaly index ([0-9.]+) > ([0-9.]+)", text)
    assert match is not None
    index, threshold = float(match.group(1)), float(match.group(2))
    assert threshold == UpdateConfig().anomaly_index
    assert index > 2 * threshold
