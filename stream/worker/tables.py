"""Faust tables written in bulk."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from stream.worker.publisher import Publisher


class BufferedTable(MutableMapping[str, Any]):
    """A Faust table written in bulk.

    Changes go to the table's store at once and to its changelog when :meth:`flush` is called,
    through the same producer as every output (the last value of each key only). Faust's own
    per-change path queues every change in a buffer that stalls the stream once more than 100 wait,
    which an agent that updates hundreds of segments or users per event hits all the time.
    Recovery is Faust's: the changelog records are the same (JSON key and value, ``None`` deletes).
    """

    def __init__(self, table: Any):
        self.table = table
        self.pending: dict[str, Any] = {}

    @property
    def store(self) -> Any:
        return self.table.data  # Faust's store (created on first use)

    def __getitem__(self, key: str) -> Any:
        return self.store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.store[key] = value
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        del self.store[key]
        self.pending[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.store.keys()))

    def __len__(self) -> int:
        return len(self.store)

    async def flush(self, publisher: Publisher, partition: int) -> None:
        """Send the changes since the last flush to the changelog partition of the event's partition."""
        if self.pending:
            records = [(orjson.dumps(k), None if v is None else orjson.dumps(v)) for k, v in self.pending.items()]
            self.pending = {}
            await publisher.send(self.table.changelog_topic, records, partition=partition)
