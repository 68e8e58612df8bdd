"""The policy file, `mlwarden.yaml`: what is trusted.

The file is untrusted input until it validates: `load_policy` parses it with
pydantic models that forbid unknown fields, wraps every validation error into a
`PolicyFileError` (E110) naming the field path, and converts the result to the
frozen core types below at once. An empty or missing `trust:` section trusts
nothing: verification against it refuses, and says why.

```yaml
version: 1
trust:
  threshold: 2                 # distinct trusted signers required (k of n)
  signers:
    - name: release
      fingerprint: 3b1f...     # sha256 of the DER SubjectPublicKeyInfo, hex
      public_key: keys/release.pub   # optional: the key itself (else pass --key)
      not_after: 2027-01-01T00:00:00Z
    - name: corp-ca
      x509:
        root: certs/root.pem   # a trusted root CA certificate (PEM)
        subject: ml-release@example.com   # CN or SAN the leaf must carry
  revoked:
    - 9c04...                  # fingerprints that never count
```
"""

from __future__ import annotations

from mlwarden.policy._model import (
    KeySigner,
    PolicyFile,
    TrustedSigner,
    TrustPolicy,
    X509Signer,
    load_policy,
    parse_policy,
)

__all__ = [
    "KeySigner",
    "PolicyFile",
    "TrustPolicy",
    "TrustedSigner",
    "X509Signer",
    "load_policy",
    "parse_policy",
]
