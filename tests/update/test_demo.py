"""The demo's part: a backdoored update that verifies is still refused; an honest one passes."""

from __future__ import annotations

from pathlib import Path

from mlwarden.update.demo import run_update_demo


def test_backdoored_update_verifies_and_is_refused(tmp_path: Path) -> None:
    demo = run_update_demo(tmp_path)
    assert demo.problems == ()
    text = "\n".join(demo.lines)
    assert "its signature by the demo key verifies: True" in text
    assert "v1 -> v2-honest: passed" in text
    assert "v1 -> v2-backdoored: REFUSED (UPD009)" in text
    assert "UPD009: class 7:" in text
