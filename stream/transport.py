"""Faust's Kafka transport with one change: the consumer's fetch wait.

Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. A broker holds a fetch
until that wait runs out when there is little data, so at moderate load every post waits up to
1.5 s before the worker sees it. :class:`InterestApp` uses ``STREAM_FETCH_WAIT_MS`` instead.
"""
from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


def transport_class(fetch_max_wait_ms: int) -> type[driver.Transport]:
    """The aiokafka transport of Faust, with a worker consumer that waits ``fetch_max_wait_ms``."""
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms})

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)

    return type("Transport", (driver.Transport,), {"Consumer": Consumer})


class InterestApp(faust.App):
    """A Faust app whose consumer fetch wait is a setting."""

    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> Any:
        return transport_class(self.fetch_max_wait_ms)(self.conf.broker_consumer, self)
