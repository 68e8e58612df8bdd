"""The corpus sample record and the writer every corpus section shares."""

import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One corpus entry: a file (or folder) and what a scanner must say about it."""

    path: Path
    """The file, or the folder for SavedModel, ONNX with external data and HF caches."""
    malicious: bool
    technique: str
    """Short stable id such as "pickle-reduce-os-system"."""
    format: str
    note: str
    """What it is; for published bypasses, the source (tool + advisory or issue)."""
    expect: str = "clean"
    """The least verdict a correct scanner gives: "malicious", "suspicious" or "clean"."""

    def to_dict(self, root: Path) -> dict[str, object]:
        return {
            "path": str(self.path.relative_to(root)),
            "malicious": self.malicious,
            "technique": self.technique,
            "format": self.format,
            "note": self.note,
            "expect": self.expect,
        }


@dataclass(slots=True)
class Writer:
    """Writes samples under `root` and records them."""

    root: Path
    marker_dir: Path
    samples: list[Sample] = field(default_factory=list)

    def command(self, technique: str) -> str:
        """The harmless shell payload: leaves a marker file if it ever runs."""
        return "touch " + shlex.quote(str(self.marker_dir / f"pwned-{technique}"))

    def python(self, technique: str) -> str:
        """The harmless Python payload: the same marker, from Python source."""
        return f"import os; os.system({self.command(technique)!r})"

    def path(self, relpath: str) -> Path:
        target = self.root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write(self, relpath: str, data: bytes) -> Path:
        target = self.path(relpath)
        target.write_bytes(data)
        return target

    def bad(
        self,
        relpath: str,
        data: bytes | None,
        *,
        technique: str,
        fmt: str,
        note: str,
        expect: str = "malicious",
    ) -> Path:
        """Record a malicious sample (written first when `data` is given)."""
        target = self.write(relpath, data) if data is not None else self.root / relpath
        self.samples.append(
            Sample(
                path=target,
                malicious=True,
                technique=technique,
                format=fmt,
                note=note,
                expect=expect,
            )
        )
        return target

    def good(
        self, relpath: str, data: bytes | None, *, technique: str, fmt: str, note: str
    ) -> Path:
        """Record a benign sample made by a real framework."""
        target = self.write(relpath, data) if data is not None else self.root / relpath
        self.samples.append(
            Sample(path=target, malicious=False, technique=technique, format=fmt, note=note)
        )
        return target
