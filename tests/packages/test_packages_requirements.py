"""Reading requirements files and pyproject.toml: what pip would install, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import DependencyFileError, PathNotFoundError
from mlwarden.packages import Origin, read_dependencies


def _write(tmp_path: Path, text: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_requirement_kinds_and_locations(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# a comment line\n"
        "torch==2.13.0 --hash=sha256:" + "a" * 64 + "\n"
        "numpy>=1.26  # inline comment\n"
        "pandas==2.*\n"
        "scikit-learn===1.5.0\n"
        "git+https://github.com/org/tool.git@v1#egg=tool\n"
        "https://example.com/wheels/extra_pkg-1.0-py3-none-any.whl\n"
        "./vendor/localpkg\n"
        "-e ./editable_pkg\n"
        "named @ https://example.com/named-2.0.tar.gz\n"
        "onnx==1.16.0 \\\n"
        "    --hash=sha256:" + "b" * 64 + "\n"
        "--index-url https://pypi.org/simple\n"
        "--extra-index-url=https://example.com/simple\n",
    )
    deps = read_dependencies(path).dependencies
    by_line = {int(d.location.rsplit(":", 1)[1]): d for d in deps}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert by_line[2].version == "2.13.0" and by_line[2].hashes == ("sha256:" + "a" * 64,)
    assert by_line[3].version is None and by_line[3].specifier == ">=1.26"
    assert by_line[4].version is None  # a wildcard is a range, not a pin
    assert by_line[5].version == "1.5.0"
    assert (by_line[6].origin, by_line[6].name) == (Origin.VCS, "tool")
    assert (by_line[7].origin, by_line[7].name) == (Origin.URL, "extra_pkg")
    assert by_line[8].origin is Origin.PATH
    assert by_line[9].origin is Origin.PATH and by_line[9].editable
    assert (by_line[10].origin, by_line[10].name) == (Origin.URL, "named")
    assert by_line[11].version == "1.16.0" and by_line[11].hashes  # joined continuation line


def test_includes_are_followed_and_require_hashes_read(tmp_path: Path) -> None:
    _write(tmp_path, "--require-hashes\nsafetensors==0.4.5\n", name="base.txt")
    path = _write(tmp_path, "-r base.txt\n-c constraints.txt\njoblib==1.4.2\n")
    result = read_dependencies(path)
    assert [d.name for d in result.dependencies] == ["safetensors", "joblib"]
    assert result.dependencies[0].location.endswith("base.txt:2")
    assert result.require_hashes


def test_include_cycle_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "-r b.txt\n", name="a.txt")
    _write(tmp_path, "-r a.txt\n", name="b.txt")
    with pytest.raises(DependencyFileError, match=r"a\.txt:1: .*includes itself"):
        read_dependencies(tmp_path / "b.txt")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("numpy==1.26\ntorch===\n", 2, "not a valid requirement"),
        ("numpy==1.26\n\n--frobnicate\n", 3, "unknown or malformed option"),
        ("torch==2.13.0 --hash=md5:abc\n", 1, "malformed hash"),
        ("torch==2.13.0 --unknown-opt x\n", 1, "unknown option"),
        ("-r missing.txt\n", 1, "does not exist"),
        ("numpy 'unterminated\n", 1, "not a valid requirement"),
    ],
)
def test_bad_requirement_lines_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DependencyFileError, match=message) as caught:
        read_dependencies(path)
    assert f"requirements.txt:{line}:" in caught.value.message
    assert caught.value.code == "E120"


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"numpy==1.26\n\xff\xfe\n")
    with pytest.raises(DependencyFileError, match=r"requirements\.txt:2: not valid UTF-8"):
        read_dependencies(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError):
        read_dependencies(tmp_path / "nope.txt")


def test_pyproject_dependencies_and_extras(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[project]\nname = "app"\nversion = "1"\n'
        'dependencies = [\n  "numpy>=1.26",\n  "torch==2.13.0",\n]\n'
        '[project.optional-dependencies]\nonnx = ["onnx==1.16.0"]\n',
        name="pyproject.toml",
    )
    deps = read_dependencies(path).dependencies
    assert [(d.name, d.version) for d in deps] == [
        ("numpy", None),
        ("torch", "2.13.0"),
        ("onnx", "1.16.0"),
    ]
    assert deps[0].location.endswith("pyproject.toml:5")
    assert deps[2].location.endswith("pyproject.toml:9")


def test_pyproject_without_project_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\n', "pyproject.toml"
    )
    with pytest.raises(DependencyFileError, match=r"no \[project\] table") as caught:
        read_dependencies(path)
    assert caught.value.code == "E120"


def test_pyproject_bad_toml_and_bad_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "[project\nname=1\n", "pyproject.toml")
    with pytest.raises(DependencyFileError, match=r"not valid TOML.*line 1"):
        read_dependencies(path)
    path.write_text('[project]\ndependencies = "numpy"\n', encoding="utf-8")
    with pytest.raises(DependencyFileError, match=r"project\.dependencies is not a list"):
        read_dependencies(path)
