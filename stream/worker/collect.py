"""The garbage collector's thresholds in the worker and in its learner process.

CPython collects its youngest generation after every 700 container objects allocated and not yet
freed. The worker allocates thousands per fetch (decoded records, window tallies, output records),
nearly all freed by reference counting, and so ran a collection every 30 posts or so: 15–22 µs of CPU
per post in the bench's backlog, 5–7% of the worker's CPU, for a few thousand objects reclaimed over
15,000 posts. Collected after every 50,000 instead, the same backlog costs 0.8–2.6 µs per post in one or
two collections, whose pauses are no longer than before (14–25 ms at most against 16–32). A full
collection scans the whole heap whatever the thresholds (75 ms once, on a loaded host); it is rarer now.

Collecting rarely is only safe where little memory waits in reference cycles. A recursive closure is
one: written that way, the snapshot and delta codec and the records of the internal topics held 30–45 MB
more in the learner process with these thresholds (measured). ``tests/models/test_codec.py`` and
``tests/audience/test_records.py`` check that they leave nothing for the collector. See
docs/performance.md.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 10, 10)  # youngest generation, then how many of its collections per older one


def collect_less() -> None:
    """Set the collector's thresholds to :data:`THRESHOLDS` in this process.

    >>> before = gc.get_threshold(); collect_less(); gc.get_threshold()
    (50000, 10, 10)
    >>> gc.set_threshold(*before)
    """
    gc.set_threshold(*THRESHOLDS)
