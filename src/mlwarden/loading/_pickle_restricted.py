"""A restricted unpickler: only the names the scanner's allowlist calls safe.

The scanner (`mlwarden.artifacts._pickle.policy`) has already judged every name
the pickle imports before this runs; the unpickler enforces the same judgement a
second time at the one place a name turns into a Python object, `find_class`.
A pickle that slipped past the analyzer (an import reached some way the
analyzer did not model) still cannot resolve a name outside the allowlist here.
Unknown is refused, not just dangerous.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from mlwarden.errors import MalformedInputError, UnsupportedLoadError

# Allowlisted by the scanner, but they read companion files next to the pickle
# (joblib < 0.10): bytes outside the verified buffer, so never in a load.
REFUSED_IN_LOAD = frozenset(
    {
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    }
)


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle asked for a name outside the allowlist (raised inside find_class)."""

    def __init__(self, full_name: str, reason: str) -> None:
        super().__init__(f"{full_name} is not allowed ({reason})")
        self.full_name = full_name
        self.reason = reason


def check_global(module: str, name: str) -> None:
    """Raise RefusedGlobalError unless the policy calls `module.name` safe."""
    from mlwarden.artifacts._pickle.policy import Kind, canonical, is_attribute_walk, judge

    full = canonical(module, name)
    if full in REFUSED_IN_LOAD:
        raise RefusedGlobalError(full, "it reads files beside the pickle")
    # A dotted name walks attributes out of its module: only exact allowlist entries pass.
    judgement = judge(full, attribute_walk=is_attribute_walk(name))
    if judgement.kind is not Kind.SAFE:
        raise RefusedGlobalError(full, f"{judgement.kind.value}: {judgement.reason}")


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` consults the allowlist first."""

    def find_class(self, module: str, name: str, /) -> Any:
        check_global(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid: Any, /) -> Any:
        # Persistent ids hand control to application code; plain pickles have none.
        raise RefusedGlobalError("persistent_load", "persistent ids are not supported")


def refused(location: str, exc: RefusedGlobalError) -> UnsupportedLoadError:
    """The error for a pickle that needs a name the restricted unpickler refuses."""
    return UnsupportedLoadError(
        f"{location}: the pickle needs {exc.full_name}, which the restricted unpickler "
        f"refuses ({exc.reason}); nothing was loaded",
        hint="save the model as safetensors or ONNX, or as a pickle of allowlisted types",
    )


def malformed(location: str, what: str, exc: BaseException) -> MalformedInputError:
    return MalformedInputError(
        f"{location}: {what} could not be deserialized: {type(exc).__name__}: {exc}"
    )


def load_pickle(data: bytes, location: str) -> Any:
    """Unpickle verified bytes with the restricted unpickler; refuse trailing data."""
    stream = io.BytesIO(data)
    try:
        obj = RestrictedUnpickler(stream).load()
    except RefusedGlobalError as exc:
        raise refused(location, exc) from None
    except Exception as exc:  # allowlisted constructors raise anything on bad state
        raise malformed(location, "the pickle", exc) from None
    if stream.tell() != len(data):
        # Bytes after STOP were hashed but never looked at by this loader: say so.
        raise MalformedInputError(
            f"{location}: {len(data) - stream.tell()} bytes follow the end of the pickle"
        )
    return obj
