"""The in-toto Statement v1 that OpenSSF Model Signing v1.0 signs.

The subject is the model's name with a sha256 over the resource digests (raw
bytes, in the listed order); the predicate lists every resource (name, algorithm,
digest) and how the model was serialized. mlwarden adds a `size` to each
resource: v1.0 verifiers read only name, algorithm and digest, and mlwarden uses
the size to report a changed file from a stat call, before hashing anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_ALL_HEX = re.compile(r"[0-9a-f]*")
_RESOURCE_KEYS = frozenset({"name", "algorithm", "digest", "size"})


class StatementError(ValueError):
    """The payload is not a model-signing v1.0 statement; the message says where."""


class Resource(NamedTuple):
    """One signed file. A named tuple, not a dataclass: a dataset manifest makes tens of
    thousands of them, and a tuple is several times cheaper to build than a frozen dataclass."""

    name: str
    digest: str
    size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a signature says: the model's name, its resources, the paths left out."""

    model_name: str
    resources: tuple[Resource, ...]
    ignore_paths: tuple[str, ...] = ()

    @property
    def root_digest(self) -> str:
        return root_digest(r.digest for r in self.resources)

    def digests(self) -> dict[str, str]:
        return {r.name: r.digest for r in self.resources}


def root_digest(digests: Any) -> str:
    """sha256 over the raw bytes of the digests, in order (model_signing's subject digest)."""
    items = list(digests)
    if set(map(len, items)) <= {64}:
        # All full-length: one hex decode and one update for tens of thousands of digests.
        return hashlib.sha256(bytes.fromhex("".join(items))).hexdigest()
    hasher = hashlib.sha256()
    for digest in items:
        hasher.update(bytes.fromhex(digest))
    return hasher.hexdigest()


def build_statement(manifest: Manifest) -> bytes:
    resources = []
    for resource in sorted(manifest.resources, key=lambda r: r.name):
        item: dict[str, Any] = {
            "name": resource.name,
            "algorithm": "sha256",
            "digest": resource.digest,
        }
        if resource.size is not None:
            item["size"] = resource.size
        resources.append(item)
    serialization: dict[str, Any] = {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
    }
    if manifest.ignore_paths:
        serialization["ignore_paths"] = list(manifest.ignore_paths)
    ordered = Manifest(
        model_name=manifest.model_name,
        resources=tuple(sorted(manifest.resources, key=lambda r: r.name)),
    )
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": ordered.root_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": serialization, "resources": resources},
    }
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise StatementError("duplicate JSON key (a key appears twice in one object)")
    return value


def loads_strict(data: bytes | str) -> Any:
    """JSON with duplicate keys refused (and no NaN or Infinity).

    Two parsers that keep different copies of a duplicated key would see two different
    signed documents, so the ambiguity is refused instead of resolved. The check is one
    C-built dict per object, compared in length with the pairs the parser read (keys are
    compared decoded, so "a" and "\\u0061" are one key); for a manifest of ten thousand
    resources it costs about half the parse itself.
    """

    def bad_constant(name: str) -> Any:
        raise StatementError(f"JSON constant {name} is not allowed")

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return json.loads(text, parse_constant=bad_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        # Deep nesting exhausts the C parser's recursion guard: refuse it as bad input.
        raise StatementError("JSON nested too deeply") from None


def parse_statement(payload: bytes) -> Manifest:
    """Check the statement's shape and its root digest; names are checked by the caller.

    Unknown fields of the predicate are ignored, as the v1.0 predicate asks of verifiers
    (it is how the format grows); everything else must be exactly as specified.
    """
    try:
        data = loads_strict(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatementError(f"payload is not JSON: {exc}") from None
    _expect(isinstance(data, dict), "the statement is not a JSON object")
    extra = set(data) - {"_type", "subject", "predicateType", "predicate"}
    _expect(not extra, f"unknown statement fields {sorted(extra)}")
    _expect(data.get("_type") == STATEMENT_TYPE, f"_type is not {STATEMENT_TYPE}")
    _expect(data.get("predicateType") == PREDICATE_TYPE, f"predicateType is not {PREDICATE_TYPE}")
    subjects = data.get("subject")
    _expect(isinstance(subjects, list) and len(subjects) == 1, "expected exactly one subject")
    subject = subjects[0]
    _expect(isinstance(subject, dict), "subject is not an object")
    name = subject.get("name")
    _expect(isinstance(name, str) and name != "", "subject.name is missing")
    digest = subject.get("digest")
    _expect(
        isinstance(digest, dict) and isinstance(digest.get("sha256"), str),
        "subject.digest.sha256 is missing",
    )
    predicate = data.get("predicate")
    _expect(isinstance(predicate, dict), "predicate is not an object")
    ignore_paths = _serialization(predicate.get("serialization"))
    raw = predicate.get("resources")
    _expect(isinstance(raw, list), "predicate.resources is not a list")
    resources: list[Resource] = []
    append = resources.append
    for index, item in enumerate(raw):
        # The fast test first (tens of thousands of resources); the slow one names the fault.
        try:
            if item.keys() <= _RESOURCE_KEYS and item["algorithm"] == "sha256":
                res_name, res_digest, size = item["name"], item["digest"], item.get("size")
                if (
                    type(res_name) is str
                    and type(res_digest) is str
                    and len(res_digest) == 64
                    and (size is None or (type(size) is int and size >= 0))
                ):
                    append(Resource(res_name, res_digest, size))
                    continue
        except (AttributeError, KeyError, TypeError):
            pass
        _resource_fault(index, item)
    # Every digest is 64 characters long; one pass over all of them checks they are hex.
    if not _ALL_HEX.fullmatch("".join(r.digest for r in resources)):
        bad = next(i for i, r in enumerate(resources) if not _HEX64.match(r.digest))
        _resource_fault(bad, raw[bad])
    manifest = Manifest(model_name=name, resources=tuple(resources), ignore_paths=ignore_paths)
    _expect(
        manifest.root_digest == digest["sha256"],
        "subject digest does not match the resources (the manifest is inconsistent)",
    )
    return manifest


def _resource_fault(index: int, item: Any) -> None:
    where = f"predicate.resources[{index}]"
    _expect(isinstance(item, dict), f"{where} is not an object")
    _expect(not set(item) - _RESOURCE_KEYS, f"{where}: unknown field")
    _expect(isinstance(item.get("name"), str), f"{where}.name is not a string")
    _expect(item.get("algorithm") == "sha256", f"{where}.algorithm is not sha256")
    _expect(False, f"{where}.digest is not a sha256 hex digest, or size is not a size")


def _serialization(value: Any) -> tuple[str, ...]:
    _expect(isinstance(value, dict), "predicate.serialization is not an object")
    _expect(value.get("method") == "files", "only the 'files' serialization is supported")
    _expect(value.get("hash_type") == "sha256", "only sha256 hashing is supported")
    _expect(isinstance(value.get("allow_symlinks"), bool), "serialization.allow_symlinks")
    extra = set(value) - {"method", "hash_type", "allow_symlinks", "ignore_paths"}
    _expect(not extra, f"unknown serialization fields {sorted(extra)}")
    paths = value.get("ignore_paths", [])
    _expect(
        isinstance(paths, list) and all(isinstance(p, str) for p in paths),
        "serialization.ignore_paths is not a list of strings",
    )
    return tuple(paths)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise StatementError(message)
