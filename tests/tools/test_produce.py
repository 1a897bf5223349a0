"""The load generator says when the broker did not take a record, instead of leaving it to look lost."""

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from stream.settings import Settings
from stream.tools import produce as produce_module
from stream.tools.broker import BrokerError
from stream.tools.produce import produce


class Producer:
    """kafka-python's producer as ``produce`` uses it; the second record's send fails after the
    client's retries, as a batch that expired does."""

    def __init__(self):
        self.futures: list[Future] = []

    def send(self, topic, key=None, value=None):
        future = Future()
        self.futures.append(future)
        return future

    def flush(self):
        for i, future in enumerate(self.futures):
            if i == 1:
                future.failure(KafkaTimeoutError("Batch for posts-3 containing 1 record(s) expired"))
            else:
                future.success(None)

    def close(self):
        pass


def test_records_the_broker_did_not_take_are_a_one_line_error(monkeypatch):
    monkeypatch.setattr(produce_module, "ensure_topics", lambda *args, **kwargs: None)
    monkeypatch.setattr(produce_module, "make_producer", lambda settings: Producer())
    events = [{"id": f"t{i}", "text": "a post"} for i in range(3)]
    with pytest.raises(BrokerError) as err:
        produce(Settings(broker="127.0.0.1:9"), events, progress=False)
    assert str(err.value) == (
        "1 of 3 records were not delivered to 127.0.0.1:9 "
        "(KafkaTimeoutError: Batch for posts-3 containing 1 record(s) expired)"
    )
