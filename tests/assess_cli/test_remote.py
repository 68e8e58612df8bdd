"""RemoteTarget against a real gateway on 127.0.0.1: credentials, metadata, scores or
labels detected, the query budget and the rate respected, HTTP errors mapped."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.assess_cli.conftest import Served, digits_split

from mlwarden.assess._remote import Credentials, RemoteTarget, TokenBucket, split_model_url
from mlwarden.errors import (
    EndpointCredentialsError,
    EndpointError,
    EndpointRefusedError,
    QueryBudgetExhaustedError,
    UpstreamUnavailableError,
)


def _connect(served: Served, model: str, **kwargs: object) -> RemoteTarget:
    x, _ = digits_split()
    options: dict[str, object] = {
        "model": model,
        "n_classes": 10,
        "probe": x[0],
        "value_range": (0.0, 16.0),
        "credentials": Credentials(api_key=served.env.api_keys["batch"]),
        "rate": 100000.0,
    }
    options.update(kwargs)
    return RemoteTarget.connect(served.url, **options)  # type: ignore[arg-type]


def test_scores_from_the_bare_model_match_the_model(served: Served) -> None:
    x, _ = digits_split()
    with _connect(served, "digits-bare") as target:
        assert target.output == "scores"
        assert target.input_shape == (64,)
        assert target.datatype == "FP64"
        assert target.input_name == "pixels"
        scores = target.predict_scores(x.astype(np.float32))
        assert scores.shape == (40, 10)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        assert (scores.argmax(axis=1) == served.models.expected).all()
        assert target.queries == 41  # the probe counts
        assert target.requests == 1 + 1 + 2  # metadata, probe, 40 rows in batches of 32


def test_label_only_output_is_detected(served: Served) -> None:
    x, _ = digits_split()
    with _connect(served, "digits") as target:
        assert target.output == "labels"
        labels = target.predict_labels(x.astype(np.float32))
        assert (labels == served.models.expected).all()
        # A label-only target gives one-hot rows: no score to exploit.
        scores = target.predict_scores(x[:3].astype(np.float32))
        assert set(np.unique(scores)) == {0.0, 1.0}


def test_bearer_token_works_like_the_api_key(served: Served) -> None:
    with _connect(served, "digits", credentials=Credentials(token=served.env.token())) as target:
        assert target.output == "labels"


def test_the_budget_is_refused_before_a_query_is_sent(served: Served) -> None:
    x, _ = digits_split()
    with _connect(served, "digits-bare", max_queries=20) as target:
        target.predict_labels(x[:19].astype(np.float32))
        requests = target.requests
        with pytest.raises(QueryBudgetExhaustedError, match="budget of 20"):
            target.predict_labels(x[:2].astype(np.float32))
        assert target.requests == requests
        assert target.queries == 20


def test_the_rate_is_kept_by_sleeping(served: Served) -> None:
    x, _ = digits_split()
    rows = np.tile(x, (3, 1)).astype(np.float32)[:100]
    with _connect(served, "digits-bare", rate=250.0, burst=20) as target:
        started = time.monotonic()
        target.predict_labels(rows)
        elapsed = time.monotonic() - started
    # 101 queries from a bucket of 20 refilled at 250/s: at least (101 - 20) / 250 s.
    # (Slow answers refill the bucket too, so the sleeping alone is not bounded below.)
    assert elapsed >= (101 - 20) / 250 - 0.01


def test_token_bucket_sleeps_exactly_what_it_owes() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, 5.0, clock=lambda: now[0], sleep=sleep)
    bucket.take(5)
    bucket.take(5)
    assert slept == [pytest.approx(0.5)]


@pytest.mark.parametrize("key", ["mlw_wrong", None])
def test_wrong_or_missing_credentials(served: Served, key: str | None) -> None:
    with pytest.raises(EndpointCredentialsError, match="HTTP 401") as info:
        _connect(served, "digits", credentials=Credentials(api_key=key))
    assert info.value.code == "E177"
    assert info.value.exit_status == 2


def test_an_identity_without_permission_is_refused(served: Served) -> None:
    outsider = Credentials(api_key=served.env.api_keys["outsider"])  # another tenant
    with pytest.raises(EndpointCredentialsError, match="HTTP 403"):
        _connect(served, "digits", credentials=outsider)


def test_unknown_model_and_bad_urls(served: Served) -> None:
    with pytest.raises(EndpointError, match="404"):
        _connect(served, "no-such-model")
    with pytest.raises(EndpointError, match="not an http"):
        split_model_url("ftp://127.0.0.1/x", "digits")
    with pytest.raises(EndpointError, match="no model named"):
        split_model_url("http://127.0.0.1:1", None)
    assert split_model_url("http://h:1/v2/models/digits", None) == ("http://h:1", "digits")


def test_nothing_listening_is_upstream_unavailable() -> None:
    from tests.gateway.support import free_port

    x, _ = digits_split()
    with pytest.raises(UpstreamUnavailableError, match="cannot be reached"):
        RemoteTarget.connect(
            f"http://127.0.0.1:{free_port()}",
            model="digits",
            n_classes=10,
            probe=x[0],
            value_range=(0.0, 16.0),
        )


def test_a_server_quota_ends_the_assessment_with_its_own_code(served: Served) -> None:
    x, _ = digits_split()
    # The gateway counts requests: a quota of 40 a day outlasts no assessment.
    rows = np.tile(x, (2, 1)).astype(np.float32)
    with (  # noqa: PT012 - the refusal comes after some queries pass
        _connect(served, "quota", batch=1) as target,
        pytest.raises(EndpointRefusedError, match="429") as info,
    ):
        for row in rows:
            target.predict_labels(row[None])
    assert info.value.code == "E178"
