"""Identity: who is calling the gateway. No identity, no service.

```python
authenticator = Authenticator(IdentityConfig.model_validate(section), base_dir=config_dir)
principal = authenticator.authenticate(headers, peer_cert_der=None, client_addr="10.0.0.7")
```

JWT bearer tokens (RS256, ES256, EdDSA from a JWKS file or URL; HS256 only when configured),
API keys stored as sha256 hashes, and client certificates (the gateway's own mutual TLS, or
a trusted proxy's `x-forwarded-client-cert`). Failures raise an `IdentityError` (E301-E308,
HTTP 401; E308 is 503).
"""

from mlwarden.identity._apikeys import generate_api_key, hash_api_key
from mlwarden.identity._authenticator import Authenticator
from mlwarden.identity._certs import parse_xfcc
from mlwarden.identity._config import (
    ApiKeyEntryConfig,
    ApiKeysConfig,
    ClientCertEntryConfig,
    IdentityConfig,
    JwtConfig,
    MtlsConfig,
)
from mlwarden.identity._principal import AuthMethod, Principal

__all__ = [
    "ApiKeyEntryConfig",
    "ApiKeysConfig",
    "AuthMethod",
    "Authenticator",
    "ClientCertEntryConfig",
    "IdentityConfig",
    "JwtConfig",
    "MtlsConfig",
    "Principal",
    "generate_api_key",
    "hash_api_key",
    "parse_xfcc",
]
