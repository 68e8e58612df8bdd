"""Rules of the model-file scanner (`mlwarden scan`)."""

from __future__ import annotations

from mlwarden.severity import Severity, Verdict
from mlwarden.taxonomy import Rule, Threat

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

SCAN_RULES: tuple[Rule, ...] = (
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
