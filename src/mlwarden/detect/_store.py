"""Where runtime detectors keep what must outlive a process: each (identity, model)
stream's state (opaque bytes from `StreamState.to_bytes`) and the sanctions a detector
imposed (quarantine, throttle, degrade) until an admin releases them.

The store is the one of the `budgets:` section (SQLite embedded, Redis for replicas,
memory for tests), so an operator runs one store, not two. Every method is blocking and
short; the gateway calls them off the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mlwarden.budgets import BudgetsConfig

Sanction = Literal["quarantine", "throttle", "degrade"]
SANCTIONS: tuple[Sanction, ...] = ("quarantine", "throttle", "degrade")
MAX_STATE_BYTES = 1 << 20
"""A stream state larger than this is refused: state is bounded by design."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SanctionRecord:
    """One sanction in force: who, on which model, what, why and since when (Unix s)."""

    identity: str
    model: str
    sanction: Sanction
    reason: str
    since: float


class DetectorStore(abc.ABC):
    """Stream states and sanctions, keyed by (identity, model)."""

    @abc.abstractmethod
    def load_state(self, identity: str, model: str) -> bytes | None:
        """The stored state of a stream, or None for a new one."""

    @abc.abstractmethod
    def save_states(self, states: Iterable[tuple[str, str, bytes]]) -> None:
        """Write several stream states at once (the write-behind flush)."""

    @abc.abstractmethod
    def impose(self, record: SanctionRecord) -> None:
        """Record a sanction durably before returning (a stricter one replaces a milder)."""

    @abc.abstractmethod
    def release(self, identity: str, model: str) -> int:
        """Lift every sanction and forget the stream state; how many sanctions were lifted."""

    @abc.abstractmethod
    def sanctions(self) -> list[SanctionRecord]:
        """Every sanction in force."""

    @abc.abstractmethod
    def close(self) -> None: ...


class MemoryDetectorStore(DetectorStore):
    """One process, nothing kept across restarts (tests, the `memory` budget store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], bytes] = {}
        self._sanctions: dict[tuple[str, str], SanctionRecord] = {}

    def load_state(self, identity: str, model: str) -> bytes | None:
        with self._lock:
            return self._states.get((identity, model))

    def save_states(self, states: Iterable[tuple[str, str, bytes]]) -> None:
        with self._lock:
            for identity, model, blob in states:
                self._states[(identity, model)] = blob

    def impose(self, record: SanctionRecord) -> None:
        with self._lock:
            key = (record.identity, record.model)
            current = self._sanctions.get(key)
            if current is None or severity(record.sanction) >= severity(current.sanction):
                self._sanctions[key] = record

    def release(self, identity: str, model: str) -> int:
        with self._lock:
            self._states.pop((identity, model), None)
            return 1 if self._sanctions.pop((identity, model), None) is not None else 0

    def sanctions(self) -> list[SanctionRecord]:
        with self._lock:
            return sorted(self._sanctions.values(), key=lambda r: (r.identity, r.model))

    def close(self) -> None:
        return None


def severity(sanction: Sanction) -> int:
    """degrade < throttle < quarantine: a stricter sanction is never replaced by a milder."""
    return {"degrade": 0, "throttle": 1, "quarantine": 2}[sanction]


def open_detector_store(config: BudgetsConfig | None, *, base: Path | None = None) -> DetectorStore:
    """The detector store beside the budgets: same SQLite file, or same Redis server."""
    from mlwarden.budgets import BudgetsConfig, MemoryStoreConfig, SQLiteStoreConfig

    store = (config or BudgetsConfig()).store
    if isinstance(store, MemoryStoreConfig):
        return MemoryDetectorStore()
    if isinstance(store, SQLiteStoreConfig):
        from mlwarden.detect._store_sqlite import SQLiteDetectorStore

        path = Path(store.path)
        if base is not None and not path.is_absolute():
            path = base / path
        return SQLiteDetectorStore(path, busy_timeout=store.busy_timeout)
    from mlwarden.detect._store_redis import RedisDetectorStore

    return RedisDetectorStore(store.url, prefix=store.prefix + ":detect", timeout=store.timeout)
