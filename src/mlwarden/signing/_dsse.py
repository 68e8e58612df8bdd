"""DSSE (Dead Simple Signing Envelope) pre-authentication encoding.

https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md: the signature
covers the payload type and the payload, so neither can be swapped for another.
"""

from __future__ import annotations

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)
