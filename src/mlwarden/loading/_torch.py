"""PyTorch files: `torch.load(weights_only=True)` over the verified bytes.

`weights_only=True` is PyTorch's own restricted unpickler (tensors, containers,
primitive types); the scanner has judged the same bytes before. The bytes come
from memory, never from the path, and tensors land on the CPU unless the caller
names another device.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from mlwarden.errors import MissingExtraError, UnsupportedLoadError
from mlwarden.loading._pickle_restricted import malformed

# A legacy (pre-1.6) torch.save file starts with the pickled magic number 0x1950a86a20f9469cfc6c.
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def torch_zip_kind(data: bytes) -> str | None:
    """ "torch" for a torch.save archive, "torchscript" for a TorchScript one, else None.

    Both hold ``<archive>/data.pkl``; TorchScript also holds code (``code/``,
    ``constants.pkl``), which load never runs.
    """
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    tails = {name.split("/", 1)[-1] for name in names}
    if "data.pkl" not in tails:
        return None
    if "constants.pkl" in tails or any(tail.startswith("code/") for tail in tails):
        return "torchscript"
    return "torch"


def is_torch_zip(data: bytes) -> bool:
    """A zip that torch.save wrote (``<archive>/data.pkl``, no TorchScript code)."""
    return torch_zip_kind(data) == "torch"


def load_torch(data: bytes, location: str, map_location: Any) -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "torch") from None
    try:
        return torch.load(
            io.BytesIO(data), map_location=map_location, weights_only=True, mmap=False
        )
    except pickle.UnpicklingError as exc:
        raise UnsupportedLoadError(
            f"{location}: PyTorch's weights_only unpickler refused it ({_reason(exc)}); "
            "nothing was loaded",
            hint="save tensors only: torch.save(model.state_dict()), or safetensors",
        ) from None
    except Exception as exc:  # torch raises RuntimeError, ValueError ... on bad archives
        raise malformed(location, "the PyTorch file", exc) from None


def _reason(exc: BaseException) -> str:
    """The line of torch's long refusal text that names the global it refused."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line or "Unsupported global" in line:
            return line.split("error:", 1)[-1].split(". Please", 1)[0].strip()[:300]
    return lines[0][:300] if lines else type(exc).__name__
