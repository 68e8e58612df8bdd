"""The `detectors:` section of `mlwarden.yaml` (boundary model, pydantic, extra=forbid).

detectors:
  webhook: {url: "https://alerts.example/hook", timeout: 2}   # optional, best effort
  flush_seconds: 0.5        # write-behind interval of the stream state
  batch_seconds: 0.05       # calls gathered before scoring (cost vs reaction time)
  refresh_seconds: 2        # how often a replica re-reads the quarantine list
  models:
    digits:
      reference: digits.ref               # fitted by `mlwarden detect fit`
      signature: [digits.ref.sig]         # signed with `mlwarden sign`, verified at start
      window: 512
      signals: [extraction, adversarial, probing]
      responses: {extraction: quarantine, probing: throttle, adversarial: alert}
      throttle: {rate: 0.2, burst: 2}     # the stricter rate of a throttled identity

State and the quarantine list live in the store of the `budgets:` section (SQLite by
default, Redis for replicas); relative paths start at the folder of mlwarden.yaml.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Response = Literal["alert", "throttle", "degrade", "quarantine"]
SignalName = Literal["extraction", "adversarial", "probing"]
_ALL: tuple[SignalName, ...] = ("extraction", "adversarial", "probing")
_Seconds = Annotated[float, Field(gt=0, le=60, strict=False, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookConfig(_Strict):
    """Where alerts are POSTed as JSON (best effort, off the request path)."""

    url: str = Field(pattern=r"^https?://", max_length=2048)
    timeout: _Seconds = 2.0
    queue: int = Field(default=1000, ge=1, le=100_000, strict=True)


class ThrottleConfig(_Strict):
    """The stricter rate of a throttled identity (calls per second, burst)."""

    rate: float = Field(default=0.2, gt=0, le=10_000, allow_inf_nan=False)
    burst: int = Field(default=2, ge=1, le=100_000, strict=True)


class ModelDetectorsConfig(_Strict):
    """The detectors of one served model."""

    reference: str = Field(min_length=1)
    signature: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    window: int = Field(default=512, ge=8, le=65_536, strict=True)
    signals: list[SignalName] = Field(default_factory=lambda: list(_ALL), min_length=1)
    responses: dict[SignalName, Response] = Field(default_factory=dict)
    throttle: ThrottleConfig = Field(default_factory=ThrottleConfig)

    @field_validator("signals")
    @classmethod
    def _unique(cls, value: list[SignalName]) -> list[SignalName]:
        if len(set(value)) != len(value):
            raise ValueError("a signal is listed twice")
        return value

    @model_validator(mode="after")
    def _responses_for_enabled(self) -> ModelDetectorsConfig:
        off = sorted(set(self.responses) - set(self.signals))
        if off:
            raise ValueError(f"a response is set for signal(s) not enabled: {', '.join(off)}")
        return self

    def response(self, signal: str) -> Response:
        """The response to `signal` (alert when the section says nothing)."""
        return next((r for s, r in self.responses.items() if s == signal), "alert")


class DetectorsConfig(_Strict):
    """The `detectors` section."""

    models: dict[Annotated[str, Field(min_length=1)], ModelDetectorsConfig] = Field(
        default_factory=dict
    )
    webhook: WebhookConfig | None = None
    flush_seconds: _Seconds = 0.5
    batch_seconds: float = Field(default=0.05, ge=0, le=5, allow_inf_nan=False)
    """How long the worker gathers calls before scoring them: scoring a stream's calls
    together costs a fraction of scoring them one by one, and a sanction acts this much
    later."""
    refresh_seconds: _Seconds = 2.0
    max_streams: int = Field(default=100_000, ge=16, le=10_000_000, strict=True)
    """How many (identity, model) streams stay in memory; the rest wait in the store."""
