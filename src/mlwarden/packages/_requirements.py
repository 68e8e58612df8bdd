"""Read requirements files and pyproject.toml into Dependency records.

The grammar is pip's requirements-file format, read with `packaging` rather than
pip's private parser: one requirement per logical line (backslash joins lines,
`#` after whitespace starts a comment), per-requirement `--hash` options, global
options (`--require-hashes`, index options), `-r` includes and `-e` editables.
A line that does not parse is an error naming the file and line: a security tool
does not guess what an install would do.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from mlwarden.errors import DependencyFileError, PathNotFoundError, UnreadableInputError
from mlwarden.packages._model import Dependency, DependencySet, Origin

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_INCLUDE_DEPTH = 10

_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION_START = re.compile(r"(?:^|\s)(--?[A-Za-z])")
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_WHEEL_OR_SDIST = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-]*?)"
    r"(?:-[^/]*)?\.(?:whl|tar\.gz|zip|tar\.bz2|tgz)$"
)
# Options pip accepts on their own line; they change where packages come from or how
# pip resolves, not which packages are named. Values are consumed with the option.
_GLOBAL_WITH_VALUE = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--only-binary",
        "--no-binary",
        "--use-feature",
        "--progress-bar",
        "--platform",
    }
)
_GLOBAL_FLAGS = frozenset({"--no-index", "--pre", "--prefer-binary", "--require-hashes"})
_REQUIREMENT_OPTIONS = frozenset({"--hash", "--config-settings", "--global-option"})


def read_dependency_file(path: Path) -> DependencySet:
    """A requirements file or a pyproject.toml, chosen by the file name."""
    if not path.exists():
        raise PathNotFoundError(f"{path}: no such file")
    if path.name == "pyproject.toml":
        return read_pyproject(path)
    return read_requirements(path)


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            raise UnreadableInputError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DependencyFileError(f"{path}: {size} bytes is larger than {MAX_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableInputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DependencyFileError(f"{path}:{line}: not valid UTF-8") from None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, joined line without comment), as pip joins them."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        joined = " ".join(part.strip() for part in buffer).strip()
        buffer = []
        if joined:
            yield start, joined
    if buffer:
        joined = " ".join(part.strip() for part in buffer).strip()
        if joined:
            yield start, joined


def read_requirements(
    path: Path, *, _depth: int = 0, _seen: frozenset[Path] = frozenset()
) -> DependencySet:
    """Parse a pip requirements file, following `-r` includes relative to it."""
    text = _read_text(path)
    resolved = path.resolve()
    seen = _seen | {resolved}
    dependencies: list[Dependency] = []
    require_hashes = False
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        if line.startswith("-") and not line.startswith(("-e", "--editable")):
            included, flag = _global_option(line, where, path, _depth, seen)
            dependencies.extend(included)
            require_hashes = require_hashes or flag
            continue
        dependencies.append(_requirement_line(line, where, path.parent))
    return DependencySet(
        source=str(path), dependencies=tuple(dependencies), require_hashes=require_hashes
    )


def _split(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise DependencyFileError(f"{where}: {exc}") from None


def _global_option(
    line: str, where: str, path: Path, depth: int, seen: frozenset[Path]
) -> tuple[list[Dependency], bool]:
    words = _split(line, where)
    option, _, inline_value = words[0].partition("=")
    values = [inline_value] if inline_value else words[1:]
    if option in ("-r", "--requirement"):
        if len(values) != 1:
            raise DependencyFileError(f"{where}: {option} needs one file name")
        target = (path.parent / values[0]).resolve()
        if target in seen:
            raise DependencyFileError(f"{where}: {values[0]} includes itself")
        if depth >= MAX_INCLUDE_DEPTH:
            raise DependencyFileError(f"{where}: more than {MAX_INCLUDE_DEPTH} nested -r includes")
        if not target.exists():
            raise DependencyFileError(f"{where}: included file {values[0]} does not exist")
        included = read_requirements(target, _depth=depth + 1, _seen=seen)
        return list(included.dependencies), included.require_hashes
    if option in ("-c", "--constraint"):
        # Constraints narrow versions but install nothing of their own.
        if len(values) != 1:
            raise DependencyFileError(f"{where}: {option} needs one file name")
        return [], False
    if option in _GLOBAL_FLAGS and not values:
        return [], option == "--require-hashes"
    if option in _GLOBAL_WITH_VALUE and len(values) == 1:
        return [], False
    raise DependencyFileError(f"{where}: unknown or malformed option {line!r}")


def _requirement_line(line: str, where: str, base: Path) -> Dependency:
    editable = False
    if line.startswith(("-e", "--editable")):
        words = _split(line, where)
        option, _, inline = words[0].partition("=")
        if option not in ("-e", "--editable"):
            # "-efoo" style: the value is glued to the short option.
            inline = words[0][2:]
        rest = [inline] if inline else words[1:]
        if len(rest) != 1:
            raise DependencyFileError(f"{where}: -e needs one path or VCS URL")
        editable = True
        text, options = rest[0], ""
    else:
        match = _OPTION_START.search(line)
        text = line[: match.start()].strip() if match else line
        options = line[match.start() :].strip() if match else ""
    hashes = _hashes(options, where)
    return _parse_requirement(text, where, base, hashes=hashes, editable=editable)


def _hashes(options: str, where: str) -> tuple[str, ...]:
    if not options:
        return ()
    words = _split(options, where)
    hashes: list[str] = []
    index = 0
    while index < len(words):
        option, _, value = words[index].partition("=")
        if option not in _REQUIREMENT_OPTIONS:
            raise DependencyFileError(f"{where}: unknown option {option!r} after a requirement")
        if not value:
            index += 1
            if index >= len(words):
                raise DependencyFileError(f"{where}: {option} needs a value")
            value = words[index]
        if option == "--hash":
            algorithm, sep, digest = value.partition(":")
            if not sep or not digest or algorithm not in ("sha256", "sha384", "sha512"):
                raise DependencyFileError(f"{where}: malformed hash {value!r}")
            hashes.append(value)
        index += 1
    return tuple(hashes)


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or "/" in text
        or "\\" in text
        or text.endswith((".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2"))
    )


def _origin_of_url(url: str) -> Origin:
    lowered = url.lower()
    if lowered.startswith(_VCS_PREFIXES):
        return Origin.VCS
    if lowered.startswith("file:"):
        return Origin.PATH
    return Origin.URL


def _name_from_url(url: str) -> str:
    egg = _EGG.search(url)
    if egg:
        return egg.group(1)
    tail = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    archive = _WHEEL_OR_SDIST.match(tail)
    if archive:
        return archive.group("name")
    return ""


def _parse_requirement(
    text: str, where: str, base: Path, *, hashes: tuple[str, ...], editable: bool
) -> Dependency:
    scheme = urlsplit(text).scheme.lower()
    is_url = "://" in text or text.lower().startswith(_VCS_PREFIXES) or scheme == "file"
    if (is_url or _looks_like_path(text)) and " @ " not in text and not _is_named(text):
        origin = _origin_of_url(text) if is_url else Origin.PATH
        name = _name_from_url(text)
        if origin is Origin.PATH and not name and not is_url:
            name = _name_from_url(str(base / text))
        return Dependency(
            name=name,
            canonical=canonicalize_name(name) if name else "",
            version=None,
            specifier="",
            location=where,
            origin=origin,
            url=text,
            hashes=hashes,
            editable=editable,
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise DependencyFileError(f"{where}: not a valid requirement {text!r}: {first}") from None
    origin = _origin_of_url(requirement.url) if requirement.url else Origin.INDEX
    return Dependency(
        name=requirement.name,
        canonical=canonicalize_name(requirement.name),
        version=pinned_version(requirement.specifier) if origin is Origin.INDEX else None,
        specifier=str(requirement.specifier),
        location=where,
        origin=origin,
        url=requirement.url,
        hashes=hashes,
        editable=editable,
    )


def _is_named(text: str) -> bool:
    """`name @ url` written without spaces around @ (``pkg@https://...``)."""
    head = text.split("@", 1)[0]
    return "@" in text and bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*", head))


def pinned_version(specifier: SpecifierSet) -> str | None:
    """The one version a specifier allows, or None (ranges, wildcards, several clauses)."""
    specs = list(specifier)
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and "*" not in spec.version):
        return spec.version
    return None


def read_pyproject(path: Path) -> DependencySet:
    """`[project] dependencies` and every `[project.optional-dependencies]` extra (PEP 621)."""
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyFileError(f"{path}: not valid TOML: {exc}") from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise DependencyFileError(
            f"{path}: no [project] table (PEP 621); dependencies declared only in tool tables "
            "such as [tool.poetry] are not read",
            hint="export them with your tool to a requirements file and audit that",
        )
    lines = text.splitlines()
    entries: list[tuple[str, object]] = [("project.dependencies", project.get("dependencies", []))]
    extras = project.get("optional-dependencies", {})
    if not isinstance(extras, dict):
        raise DependencyFileError(f"{path}: project.optional-dependencies is not a table")
    entries.extend((f"project.optional-dependencies.{k}", v) for k, v in extras.items())
    dependencies: list[Dependency] = []
    for field, value in entries:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DependencyFileError(f"{path}: {field} is not a list of strings")
        for item in value:
            where = f"{path}:{_line_of(lines, item)}"
            dependencies.append(
                _parse_requirement(item.strip(), where, path.parent, hashes=(), editable=False)
            )
    return DependencySet(source=str(path), dependencies=tuple(dependencies))


def _line_of(lines: list[str], item: str) -> int:
    """The first line quoting the entry: TOML parsers keep no positions, text search does."""
    for quote in ('"', "'"):
        needle = f"{quote}{item}{quote}"
        for number, line in enumerate(lines, start=1):
            if needle in line:
                return number
    return 1
