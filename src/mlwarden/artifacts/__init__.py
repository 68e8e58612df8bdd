"""Model files: recognise, scan for unsafe serialization.

The public face is `scan(paths) -> Report` and `Limits`; readers and the
pickle analyzer are private modules behind it.
"""

from mlwarden.artifacts._context import Limits
from mlwarden.artifacts._scanner import scan

__all__ = ["Limits", "scan"]
