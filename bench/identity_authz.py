"""Per-call cost of the gateway's identity and authorization steps, in microseconds.

    .venv/bin/python bench/identity_authz.py [--calls 20000]

Measures, each as the p50 (and p90) of single calls timed with perf_counter_ns:
- JWT ES256 verification uncached (a fresh token each call) and cached (one token again),
  plus RS256 and EdDSA uncached for reference;
- API key lookup (sha256 + dict probe + compare_digest);
- client certificate from XFCC (parse, decode, cached certificate facts);
- Cedar decision uncached (decision cache off: cedarpy on a prepared PolicySet), cached, and
  the naive form cedarpy warns about (policies passed as a string on every call).
Everything is generated in a temporary directory; nothing leaves the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import jwt  # noqa: E402
from tests.authz.test_authorizer import POLICY  # noqa: E402
from tests.identity.conftest import (  # noqa: E402
    AUDIENCE,
    ISSUER,
    NOW,
    make_ca,
    make_client_cert,
    make_key,
    write_jwks,
)

from mlwarden.authz import Action, AuthorizationConfig, Authorizer, ModelResource  # noqa: E402
from mlwarden.identity import (  # noqa: E402
    Authenticator,
    IdentityConfig,
    Principal,
    generate_api_key,
)


def timed(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    for i in range(min(200, calls)):
        fn(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.9)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    calls = args.calls
    work = Path(tempfile.mkdtemp(prefix="mlwarden-bench-"))
    keys = {a: make_key(a, f"{a}-1") for a in ("ES256", "RS256", "EdDSA")}
    write_jwks(work / "jwks.json", *keys.values())
    api_key, digest = generate_api_key()
    ca = make_ca()
    from cryptography.hazmat.primitives.serialization import Encoding

    (work / "ca.pem").write_bytes(ca.cert.public_bytes(Encoding.PEM))
    config = IdentityConfig.model_validate(
        {
            "jwt": {"issuer": ISSUER, "audience": [AUDIENCE], "jwks_file": str(work / "jwks.json")},
            "api_keys": {"keys": [{"principal": "batch", "sha256": digest}]},
            "mtls": {
                "clients": [{"principal": "svc", "uri": "spiffe://acme/svc"}],
                "ca_file": str(work / "ca.pem"),
                "trusted_proxies": ["127.0.0.1/32"],
            },
        }
    )

    # The test certificates are valid around NOW (a fixed date): freeze the clock there.
    def clock() -> float:
        return NOW

    auth = Authenticator(config, clock=clock)
    now = int(NOW)

    def token(alg: str, i: int) -> str:
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"user-{i}",
            "exp": now + 3600,
            "roles": ["analyst"],
            "tenant": "acme",
            "clearance": 1,
        }
        return jwt.encode(body, keys[alg].private, algorithm=alg, headers={"kid": keys[alg].kid})

    results: dict[str, tuple[float, float]] = {}
    for alg in ("ES256", "RS256", "EdDSA"):
        n = max(calls // 10, 500)
        fresh = [token(alg, i) for i in range(n + 200)]
        assert config.jwt is not None
        no_cache = config.jwt.model_copy(update={"cache_size": 0})
        uncached = Authenticator(config.model_copy(update={"jwt": no_cache}), clock=clock)
        results[f"JWT {alg} verify, uncached"] = timed(
            lambda i, f=fresh, a=uncached: a.authenticate(
                {"authorization": "Bearer " + f[i]}, peer_cert_der=None, client_addr=None
            ),
            n,
        )
    one = {"authorization": "Bearer " + token("ES256", 0)}
    results["JWT ES256, cached"] = timed(
        lambda i: auth.authenticate(one, peer_cert_der=None, client_addr=None), calls
    )
    key_headers = {"x-api-key": api_key}
    results["API key lookup"] = timed(
        lambda i: auth.authenticate(key_headers, peer_cert_der=None, client_addr=None), calls
    )
    from urllib.parse import quote

    cert = make_client_cert(ca, uris=("spiffe://acme/svc",), days=365)
    pem = quote(cert.public_bytes(Encoding.PEM).decode(), safe="")
    xfcc = {"x-forwarded-client-cert": f'Cert="{pem}";URI=spiffe://acme/svc'}
    results["client cert via XFCC (parsed cert cached)"] = timed(
        lambda i: auth.authenticate(xfcc, peer_cert_der=None, client_addr="127.0.0.1"), calls
    )
    der = cert.public_bytes(Encoding.DER)
    results["client cert DER from own TLS (cached)"] = timed(
        lambda i: auth.authenticate({}, peer_cert_der=der, client_addr=None), calls
    )

    (work / "policy.cedar").write_text(POLICY)
    policy_files = [work / "policy.cedar"]
    cold = Authorizer(AuthorizationConfig(policy_files=policy_files, decision_cache_size=0))
    warm = Authorizer(AuthorizationConfig(policy_files=policy_files))
    principal = Principal(
        id="alice", method="jwt", roles=frozenset({"analyst"}), tenant="acme", clearance=1
    )
    model = ModelResource(name="churn", sensitivity="internal", owner="acme", tenant="acme")
    assert cold.is_authorized(principal, Action.INFER, model).allowed
    results["Cedar decision, uncached (prepared PolicySet)"] = timed(
        lambda i: cold.is_authorized(principal, Action.INFER, model), calls
    )
    results["Cedar decision, cached"] = timed(
        lambda i: warm.is_authorized(principal, Action.INFER, model), calls
    )
    import cedarpy

    request = {
        "principal": 'Mlwarden::User::"alice"',
        "action": 'Mlwarden::Action::"infer"',
        "resource": 'Mlwarden::Model::"churn"',
        "context": {},
    }
    entities = json.dumps(
        [
            {
                "uid": {"type": "Mlwarden::User", "id": "alice"},
                "attrs": {"roles": ["analyst"], "tenant": "acme", "clearance": 1},
                "parents": [],
            },
            {
                "uid": {"type": "Mlwarden::Model", "id": "churn"},
                "attrs": {"sensitivity": "internal", "owner": "acme", "tenant": "acme"},
                "parents": [],
            },
        ]
    )
    assert cedarpy.is_authorized(request, POLICY, entities).allowed
    results["Cedar naive: policy text re-parsed per call"] = timed(
        lambda i: cedarpy.is_authorized(request, POLICY, entities), max(calls // 4, 500)
    )

    # A larger policy set (one permit per tenant, 200 tenants) shows how re-parsing scales.
    big = POLICY + "\n".join(
        f'permit (principal, action == Mlwarden::Action::"infer", resource) '
        f'when {{ principal.tenant == "tenant-{i}" && resource.tenant == "tenant-{i}" }};'
        for i in range(200)
    )
    (work / "big.cedar").write_text(big)
    big_cold = Authorizer(
        AuthorizationConfig(policy_files=[work / "big.cedar"], decision_cache_size=0)
    )
    assert big_cold.is_authorized(principal, Action.INFER, model).allowed
    results["Cedar, 204 policies, uncached (prepared)"] = timed(
        lambda i: big_cold.is_authorized(principal, Action.INFER, model), max(calls // 4, 500)
    )
    results["Cedar, 204 policies, naive (text per call)"] = timed(
        lambda i: cedarpy.is_authorized(request, big, entities), max(calls // 20, 200)
    )

    if args.json:
        print(
            json.dumps({k: {"p50_us": v[0], "p90_us": v[1]} for k, v in results.items()}, indent=2)
        )
        return
    print(f"{'operation':<50} {'p50 µs':>9} {'p90 µs':>9}")
    for name, (p50, p90) in results.items():
        print(f"{name:<50} {p50:>9.1f} {p90:>9.1f}")
    from importlib.metadata import version

    print(f"python {sys.version.split()[0]}, pyjwt {jwt.__version__}, cedarpy {version('cedarpy')}")


if __name__ == "__main__":
    main()
