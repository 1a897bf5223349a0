from stream.pipeline.state import RecentKeys, TTLStore


def test_recent_keys_are_bounded():
    keys = RecentKeys(100)
    for i in range(1000):
        keys.add(i)
    assert len(keys) == 100 and 999 in keys and 0 not in keys


def test_ttl_store_is_bounded_and_expires():
    store: TTLStore[int] = TTLStore(ttl=5, capacity=3)
    for i in range(10):
        store.put(i, i, now=i)
    assert len(store) == 3 and store.expired == 7
    assert store.pop(9, now=9) == 9
    assert store.pop(8, now=20) is None and len(store) == 0
