"""Run the gateway on uvicorn, with TLS and mutual TLS.

uvicorn does not hand the peer certificate to the app (no ASGI `tls` extension in its
HTTP protocols), so under mutual TLS the gateway runs its own subclass of uvicorn's
httptools protocol: it reads the verified peer certificate from the TLS transport when
the connection is made and puts it in each request's scope as the ASGI TLS extension
(`scope["extensions"]["tls"]["client_cert_chain"]`, PEM). Behind a proxy that terminates
TLS, the proxy's `x-forwarded-client-cert` header is used instead, from configured proxy
addresses only (see `mlwarden.identity`).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.errors import MissingExtraError
from mlwarden.serving import TlsConfig

if TYPE_CHECKING:
    import uvicorn

    from mlwarden.gateway.app import Gateway


def _peer_cert_protocol() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class PeerCertProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, plus the ASGI TLS extension with the client's
        certificate (verified by the TLS handshake against `client_ca_file`)."""

        _tls: dict[str, Any] | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            der = ssl_object.getpeercert(binary_form=True)
            self._tls = {
                "server_cert": None,
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": None,
                "cipher_suite": None,
            }

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._tls is not None:
                self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

    return PeerCertProtocol


def make_server(
    gateway: Gateway,
    *,
    host: str,
    port: int,
    tls: TlsConfig | None = None,
    base_dir: Path | None = None,
    log_level: str = "warning",
) -> uvicorn.Server:
    """A uvicorn server for `gateway` (call `.run()`, or `.serve()` in a running loop).

    One process: several replicas are several `mlwarden serve` processes sharing Redis
    budgets and a PostgreSQL audit log.
    """
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("uvicorn", "gateway") from None
    options: dict[str, Any] = {}
    http: Any = "auto"
    if tls is not None:
        base = base_dir or Path.cwd()
        options["ssl_certfile"] = str(base / tls.cert_file)
        options["ssl_keyfile"] = str(base / tls.key_file)
        if tls.client_ca_file is not None:
            options["ssl_ca_certs"] = str(base / tls.client_ca_file)
            options["ssl_cert_reqs"] = (
                ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
            )
            http = _peer_cert_protocol()
    config = uvicorn.Config(
        gateway,
        host=host,
        port=port,
        http=http,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        **options,
    )
    return uvicorn.Server(config)
