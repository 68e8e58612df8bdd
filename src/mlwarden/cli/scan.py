"""`mlwarden scan PATH...`."""

from __future__ import annotations

from pathlib import Path

import click

from mlwarden.cli._common import (
    FAIL_ON_OPTION,
    FORMAT_OPTION,
    OUTPUT_OPTION,
    emit,
    exit_status,
    parse_gate,
)


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@FORMAT_OPTION
@FAIL_ON_OPTION
@OUTPUT_OPTION
@click.option(
    "--empty-ok",
    is_flag=True,
    help="Exit 0 instead of 2 when no input is a model file (for pre-commit hooks).",
)
def scan_command(
    paths: tuple[Path, ...], fmt: str, fail_on: str, output: Path | None, empty_ok: bool
) -> int:
    """Scan model files and folders for unsafe serialization.

    Formats are recognised by content: pickle, PyTorch, joblib, NumPy, Keras,
    HDF5, TensorFlow SavedModel, ONNX, safetensors, GGUF, and archives.
    """
    gate = parse_gate(fail_on)
    from mlwarden.artifacts import scan

    report = scan(paths)
    emit(report, fmt, output)
    return exit_status(report, gate, empty_ok=empty_ok)
