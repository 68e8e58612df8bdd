"""The threats mlwarden exists for, and the catalogue of rules that detect them.

Every rule carries its threat, its MITRE ATLAS and OWASP ML Top 10 ids and the
ATLAS mitigation that answers it, so every renderer can show them. Rule ids are
stable and never reused; a retired rule stays here, marked retired.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlwarden.severity import Severity, Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreatInfo:
    key: str
    title: str
    atlas: tuple[str, ...]
    owasp: tuple[str, ...]


class Threat(enum.Enum):
    """The threats of THREATS.md; the value carries the mappings."""

    DATA_POISONING = ThreatInfo(
        key="data-poisoning",
        title="Data poisoning",
        atlas=("AML.T0020", "AML.T0019", "AML.T0010.002"),
        owasp=("ML02", "ML08"),
    )
    MODEL_INVERSION = ThreatInfo(
        key="model-inversion",
        title="Model inversion",
        atlas=("AML.T0024.001",),
        owasp=("ML03",),
    )
    MODEL_STEALING = ThreatInfo(
        key="model-stealing",
        title="Model stealing",
        atlas=("AML.T0024.002", "AML.T0005", "AML.T0040"),
        owasp=("ML05",),
    )
    ADVERSARIAL_EXAMPLES = ThreatInfo(
        key="adversarial-examples",
        title="Adversarial examples",
        atlas=("AML.T0015", "AML.T0043"),
        owasp=("ML01",),
    )
    POISONED_UPDATES = ThreatInfo(
        key="poisoned-updates",
        title="Poisoned model updates",
        atlas=("AML.T0010.003", "AML.T0011.000", "AML.T0018.002", "AML.T0058"),
        owasp=("ML06", "ML10", "ML07"),
    )
    PRIVACY_LEAKAGE = ThreatInfo(
        key="privacy-leakage",
        title="Privacy leakage",
        atlas=("AML.T0024.000", "AML.T0057"),
        owasp=("ML04", "ML03"),
    )
    VULNERABLE_PACKAGES = ThreatInfo(
        key="vulnerable-packages",
        title="Vulnerable packages",
        atlas=("AML.T0010.001",),
        owasp=("ML06",),
    )
    SERVICE_ABUSE = ThreatInfo(
        key="service-abuse",
        title="Abuse of the service",
        atlas=("AML.T0029", "AML.T0034"),
        owasp=(),
    )

    @property
    def info(self) -> ThreatInfo:
        value: ThreatInfo = self.value
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One check. `verdict` is what a finding of this rule makes its object."""

    id: str
    title: str
    help: str
    severity: Severity
    verdict: Verdict
    threat: Threat
    mitigation: str

    @property
    def atlas(self) -> tuple[str, ...]:
        return self.threat.info.atlas

    @property
    def owasp(self) -> tuple[str, ...]:
        return self.threat.info.owasp


_UPD = Threat.POISONED_UPDATES
_VERIFY = "AML.M0014 Verify AI Artifacts"
_RESTRICT = "AML.M0011 Restrict Library Loading"
_C, _H, _M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM
_MAL, _SUS = Verdict.MALICIOUS, Verdict.SUSPICIOUS


def _scan_rule(
    rule_id: str, title: str, help_text: str, severity: Severity, verdict: Verdict
) -> Rule:
    mitigation = _RESTRICT if verdict is _MAL else _VERIFY
    return Rule(
        id=rule_id,
        title=title,
        help=help_text,
        severity=severity,
        verdict=verdict,
        threat=_UPD,
        mitigation=mitigation,
    )


_NOT_TRUSTED = (
    "Do not load this file. Obtain the model from a trusted source, verify its signature, "
    "and prefer a format that cannot execute code (safetensors, ONNX)."
)
_REVIEW = (
    "Review the named content. If it is expected, load the file only with a restricted "
    "loader, or convert the model to safetensors or ONNX."
)

RULES: tuple[Rule, ...] = (
    # --- pickle ---------------------------------------------------------------------
    _scan_rule(
        "PKL001",
        "Pickle calls a dangerous callable",
        "The pickle imports a callable that runs processes, touches files or the network, "
        "executes code or loads modules. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "PKL002",
        "Pickle imports a callable that is not known safe",
        "The pickle imports a global that is on no framework allowlist. " + _REVIEW,
        _M,
        _SUS,
    ),
    _scan_rule(
        "PKL003",
        "Pickle stream is malformed or truncated",
        "The stream does not parse to its end; loaders may still execute what precedes the "
        "break. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "PKL004",
        "Pickle hands a nested payload to a loader",
        "The pickle passes bytes to a deserializer (pickle.loads, torch.load, numpy.load, "
        "marshal). Nested payloads are a known way to hide code from scanners. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "PKL005",
        "Pickle carries code by value",
        "The pickle builds a function or code object from bytes (marshal, types.CodeType, "
        "dill or cloudpickle function reconstruction): loading runs arbitrary code. "
        + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "PKL006",
        "Pickle analysis limit reached",
        "The stream exceeds a safety limit (length, opcodes, memo size, nesting); the part "
        "beyond it was not analysed. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "PKL007",
        "Pickle reaches a dangerous attribute",
        "The pickle walks attributes such as __globals__, __builtins__, __subclasses__ or "
        "__getattribute__ to reach code it does not import by name. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "PKL008",
        "Pickle uses the extension registry",
        "EXT1/EXT2/EXT4 opcodes import globals through the copyreg extension registry, "
        "which a scanner cannot resolve. " + _REVIEW,
        _M,
        _SUS,
    ),
    # --- PyTorch ----------------------------------------------------------------------
    _scan_rule(
        "TORCH001",
        "TorchScript code uses operations outside the model",
        "TorchScript code calls operations that read or write files, or Python builtins "
        "exposed to scripts. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "TORCH002",
        "PyTorch container is malformed",
        "The checkpoint does not follow the PyTorch layout (zip, legacy tar or legacy "
        "pickle). " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- NumPy and joblib -------------------------------------------------------------
    _scan_rule(
        "NPY001",
        "NumPy file is malformed",
        "The .npy header does not parse, or the data does not match its header. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "JOBLIB001",
        "joblib container is malformed",
        "The joblib stream or its compression does not parse. " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- Keras / HDF5 -----------------------------------------------------------------
    _scan_rule(
        "KERAS001",
        "Keras model contains a Lambda layer with code",
        "A Lambda layer carries serialized Python bytecode that runs when the model is "
        "loaded or called. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "KERAS002",
        "Keras model refers to custom or unknown objects",
        "The model config names a module or class outside Keras, which a loader must import "
        "to rebuild the model. " + _REVIEW,
        _M,
        _SUS,
    ),
    _scan_rule(
        "KERAS003",
        "Keras model file is malformed",
        "The model's config or HDF5 structure does not parse. " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- TensorFlow -------------------------------------------------------------------
    _scan_rule(
        "TF001",
        "SavedModel uses file-system or system operations",
        "The graph contains operations such as ReadFile, WriteFile or MatchingFiles that "
        "touch the host when the model runs. " + _NOT_TRUSTED,
        _H,
        _MAL,
    ),
    _scan_rule(
        "TF002",
        "SavedModel calls Python",
        "The graph contains PyFunc or EagerPyFunc operations that run Python code. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "TF003",
        "SavedModel is malformed",
        "saved_model.pb does not parse as a SavedModel protocol buffer. " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- ONNX -------------------------------------------------------------------------
    _scan_rule(
        "ONNX001",
        "ONNX external data escapes the model directory",
        "A tensor's external data location is absolute or climbs out of the model "
        "directory: loading reads arbitrary host files. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "ONNX002",
        "ONNX model uses a custom operator domain",
        "Operators from a domain outside the ONNX standard need a custom operator library, "
        "which is native code. " + _REVIEW,
        _M,
        _SUS,
    ),
    _scan_rule(
        "ONNX003",
        "ONNX model is malformed",
        "The file does not parse as an ONNX ModelProto. " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- safetensors ------------------------------------------------------------------
    _scan_rule(
        "SAFET001",
        "safetensors header is invalid",
        "The header's JSON, dtypes, shapes, offsets or metadata are inconsistent "
        "(overlapping or out-of-range tensors, sizes that do not match shapes). " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- GGUF -------------------------------------------------------------------------
    _scan_rule(
        "GGUF001",
        "GGUF chat template can execute code",
        "The Jinja chat template reaches Python internals (dunder attributes, globals, "
        "imports): rendering it outside a sandbox runs code. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "GGUF002",
        "GGUF file is malformed",
        "The GGUF header or metadata does not parse. " + _REVIEW,
        _H,
        _SUS,
    ),
    # --- archives ---------------------------------------------------------------------
    _scan_rule(
        "ARCH001",
        "Archive member path escapes the extraction folder",
        "A member name is absolute or contains '..': extracting it writes outside the target "
        "folder. " + _NOT_TRUSTED,
        _C,
        _MAL,
    ),
    _scan_rule(
        "ARCH002",
        "Zip member names disagree",
        "A member's local header name differs from its central directory name, so "
        "different tools see different files. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "ARCH003",
        "Archive limit reached",
        "The archive exceeds a safety limit (decompressed size, ratio, members, nesting "
        "depth); the rest was not scanned. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "ARCH004",
        "Archive is malformed",
        "The archive or a compressed stream does not parse. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "ARCH005",
        "File is a polyglot",
        "The bytes are valid as more than one format (for example a pickle with a zip "
        "appended); loaders may pick either. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "ARCH006",
        "Archive member is encrypted",
        "An encrypted member cannot be scanned. " + _REVIEW,
        _M,
        _SUS,
    ),
    _scan_rule(
        "ARCH007",
        "Compressed content uses a method mlwarden cannot decode",
        "A member or stream is compressed with a method this installation cannot decompress "
        "(for example zstd without a decoder, or an exotic zip method), so it was not "
        "scanned. " + _REVIEW,
        _M,
        _SUS,
    ),
    # --- the scan itself --------------------------------------------------------------
    _scan_rule(
        "SCAN001",
        "Time limit reached while scanning",
        "The file took longer than the per-file time limit; the rest was not scanned. " + _REVIEW,
        _H,
        _SUS,
    ),
    _scan_rule(
        "SCAN002",
        "Symbolic link leaves the scanned root",
        "The link's target is outside the folder being scanned; it was not followed. "
        "Scan the target's folder, or replace the link with the file.",
        _M,
        _SUS,
    ),
    _scan_rule(
        "SCAN003",
        "Content does not match its claimed format",
        "The file's extension names a model format that its content does not have "
        "(a misleading extension). " + _REVIEW,
        _M,
        _SUS,
    ),
)

_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}


def get_rule(rule_id: str) -> Rule:
    """The rule with this id; a KeyError here is a bug in mlwarden."""
    return _BY_ID[rule_id]
