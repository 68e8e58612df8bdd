"""The data screen's `make demo` part: an in-range trigger found without being told."""

from pathlib import Path

from mlwarden.data.demo import in_range_demo


def test_in_range_demo_finds_the_planted_rows(tmp_path: Path) -> None:
    demo = in_range_demo(tmp_path / "demo")
    assert demo.problems == ()
    assert (tmp_path / "demo" / "digits-in-range.npz").is_file()
    assert any("precision 1.00, recall 1.00" in line for line in demo.lines)
