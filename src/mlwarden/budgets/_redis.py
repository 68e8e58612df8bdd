"""The Redis store: several gateway replicas share exact budgets.

One Lua script reads a pair's hash, decides (GCRA and the period counter, as `_gcra.py`)
and writes it back. Redis runs a script atomically, so concurrent calls from any number
of replicas are counted exactly. Without an explicit `now` the script takes the Redis
server's clock (`TIME`), so replicas with drifting clocks still agree on rates and
windows. Each key expires once its state equals a fresh one, so idle pairs cost nothing.

If Redis cannot be reached or answers an error, the call is refused (E403, fail closed)
unless the model fails open. A reply lost after the script ran (a connection cut at the
wrong moment, then retried once) may charge a call twice: an over-count, never an
under-count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlwarden.budgets._model import BudgetDecision, BudgetState, Limits, Reason
from mlwarden.budgets._policy import BudgetPolicy
from mlwarden.budgets._redis_batch import ScriptBatcher
from mlwarden.budgets.interface import _ALLOWED_UNLIMITED, BudgetStore, _unavailable
from mlwarden.errors import BudgetStoreUnavailableError, MissingExtraError, UsageError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

# ARGV: now ('' = the server's clock), cost, interval (0 = no rate), burst,
# quota (-1 = no budget), period length, period offset, mode ('c' consume | 's' state).
# Reply: {status, tokens, budget, retry_after, reset_at, used}; status 0 allowed,
# 1 rate limited, 2 budget exceeded, 3 cost too large; -1 stands for "no such limit".
LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local cost = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local quota = tonumber(ARGV[5])
local plen = tonumber(ARGV[6])
local poff = tonumber(ARGV[7])
local eps = 1e-6

local s = redis.call('HMGET', KEYS[1], 'tat', 'win', 'used')
local tat = tonumber(s[1]) or 0
local win = tonumber(s[2]) or 0
local used = tonumber(s[3]) or 0

local function fmt(x) return string.format('%.17g', x) end
local function tokens()
  if interval == 0 then return -1 end
  local ahead = tat - now
  if ahead < 0 then ahead = 0 end
  local t = math.floor((burst * interval - ahead + eps) / interval)
  if t < 0 then t = 0 end
  return t
end

local reset = -1
local left = -1
if quota >= 0 then
  local current = math.floor((now - poff) / plen)
  reset = poff + (current + 1) * plen
  if win ~= current then
    win = current
    used = 0
  end
  left = quota - used
  if left < 0 then left = 0 end
end
if ARGV[8] == 's' then
  return {0, tokens(), left, '0', fmt(reset), used}
end
if quota >= 0 then
  if cost > quota then return {3, -1, -1, '-1', fmt(reset), used} end
  if used + cost > quota then
    return {2, tokens(), left, fmt(reset - now), fmt(reset), used}
  end
end
local rtokens = -1
if interval > 0 then
  if cost > burst then return {3, -1, -1, '-1', fmt(reset), used} end
  local base = tat
  if base < now then base = now end
  local new_tat = base + cost * interval
  local allow_at = new_tat - burst * interval
  if allow_at - now > eps then
    return {1, tokens(), left, fmt(allow_at - now), fmt(reset), used}
  end
  tat = new_tat
  rtokens = math.floor((now - allow_at + eps) / interval)
end
used = used + cost
if quota >= 0 then left = quota - used end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'win', fmt(win), 'used', used)
local expiry = tat
if reset > expiry then expiry = reset end
redis.call('PEXPIRE', KEYS[1], math.ceil((expiry - now) * 1000) + 1000)
return {0, rtokens, left, '0', fmt(reset), used}
"""

_REASONS = (Reason.ALLOWED, Reason.RATE_LIMITED, Reason.BUDGET_EXCEEDED, Reason.COST_TOO_LARGE)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise MissingExtraError("redis", "gateway") from None
    return redis


class RedisStore(BudgetStore):
    """Budgets in Redis, exact across every replica that uses the same server and prefix.

    `timeout` (seconds) bounds each connect and each call: a Redis that does not answer
    in time makes the call a refusal, not a hang.
    """

    def __init__(
        self,
        url: str,
        policy: BudgetPolicy | None = None,
        *,
        prefix: str = "mlwarden:budget",
        timeout: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(policy or BudgetPolicy(), clock=clock)
        redis_mod = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._url = url
        self._prefix = prefix
        self._timeout = timeout
        try:
            # One retry: a pooled connection left over from before a Redis restart fails
            # once, the retry reconnects. More retries would only stretch an outage.
            self._client: redis.Redis = redis_mod.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise UsageError(f"budgets.store.url is not a Redis URL: {exc}") from None
        self._script = self._client.register_script(LUA)
        # What a failing Redis raises: each becomes a refusal (or a flagged pass).
        self._failures: tuple[type[Exception], ...] = (redis_mod.RedisError, OSError)
        self._aclient: redis.asyncio.Redis | None = None
        self._batcher: ScriptBatcher | None = None

    def key(self, identity: str, model: str) -> str:
        """The Redis key of a pair (the identity's length keeps any two pairs apart)."""
        return f"{self._prefix}:{len(identity)}:{identity}:{model}"

    def _args(self, limits: Limits, cost: int, now: float | None, mode: str) -> list[Any]:
        period = limits.period
        return [
            "" if now is None else repr(now),
            cost,
            repr(limits.interval),
            limits.burst,
            -1 if limits.quota is None else limits.quota,
            period.seconds,
            period.offset,
            mode,
        ]

    def _consume(
        self, identity: str, model: str, limits: Limits, cost: int, now: float | None
    ) -> BudgetDecision:
        try:
            reply = self._script(
                keys=[self.key(identity, model)], args=self._args(limits, cost, now, "c")
            )
        except self._failures as exc:
            raise BudgetStoreUnavailableError(f"Redis: {exc}") from None
        return _decision(reply)

    async def aconsume(
        self,
        identity: str,
        model: str,
        *,
        cost: int = 1,
        now: float | None = None,
        roles: tuple[str, ...] | frozenset[str] = (),
    ) -> BudgetDecision:
        """As `consume`, on redis.asyncio: the event loop runs other requests meanwhile, and
        calls that overlap share one pipelined round trip (see `_redis_batch`)."""
        if type(cost) is not int or cost < 1:
            raise UsageError(f"cost must be a positive integer, not {cost!r}")
        limits = self.limits_for(identity, model, roles)
        if limits.unlimited:
            return _ALLOWED_UNLIMITED
        batcher = self._batcher
        if batcher is None or batcher.loop is not asyncio.get_running_loop():
            batcher = self._batcher = self._new_batcher()
        try:
            reply = await batcher.call(
                self.key(identity, model), self._args(limits, cost, now, "c")
            )
        except self._failures as exc:
            return _unavailable(limits, f"Redis: {exc}")
        return _decision(reply)

    def _new_batcher(self) -> ScriptBatcher:
        import redis.asyncio
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff

        self._aclient = redis.asyncio.Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=AsyncRetry(NoBackoff(), 1),
        )
        return ScriptBatcher(self._aclient, LUA)

    def _state(self, identity: str, model: str, limits: Limits, now: float | None) -> BudgetState:
        import redis as redis_mod

        try:
            reply = self._script(
                keys=[self.key(identity, model)], args=self._args(limits, 1, now, "s")
            )
        except redis_mod.RedisError as exc:
            raise BudgetStoreUnavailableError(f"Redis: {exc}") from None
        _, tokens, left, _, reset, used = reply
        return BudgetState(
            limits=limits,
            used=int(used) if limits.quota is not None else 0,
            remaining_tokens=None if tokens < 0 else int(tokens),
            remaining_budget=None if limits.quota is None else int(left),
            reset_at=None if limits.quota is None else float(reset),
        )

    def reset(self, identity: str, model: str) -> None:
        import redis as redis_mod

        try:
            self._client.delete(self.key(identity, model))
        except redis_mod.RedisError as exc:
            raise BudgetStoreUnavailableError(f"Redis: {exc}") from None

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        """Close the asyncio connections too (from the loop that used them)."""
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
            self._batcher = None
        self.close()


def _decision(reply: list[Any]) -> BudgetDecision:
    status, tokens, left, retry, reset = reply[0], reply[1], reply[2], reply[3], reply[4]
    reset_at = float(reset)
    return BudgetDecision(
        allowed=status == 0,
        reason=_REASONS[status],
        remaining_tokens=None if tokens < 0 else int(tokens),
        remaining_budget=None if left < 0 else int(left),
        retry_after=None if status in (0, 3) else float(retry),
        reset_at=None if reset_at < 0 else reset_at,
    )
