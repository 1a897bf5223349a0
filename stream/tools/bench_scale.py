"""``interest-stream bench --workers 1,2``: what each added worker adds.

For each worker count, fresh topics and group; the workers start and settle (one of them holds the
learner role), then the same demo tweets (every one labelled, inline) are produced as fast as the
broker takes them. Measured from the moment all workers are ready until the predictions are all out
and the model replicas stop moving:

- ``cluster_cpu_us_per_event``: CPU seconds (user + system) of all worker processes over that span,
  per post predicted; ``scale_cpu_ratio`` is that of the largest count over that of one worker
  (1.0: a second worker costs nothing the first did not);
- ``model_staleness_p99_ms``: a label applied by the learner → visible in a worker's replica, the
  worst p99 over the workers (each worker times every delta it applies), measured under a fixed
  load of half the one-worker throughput after the backlog;
- ``update_bytes_per_s``: what the learner published on the model topic (deltas and snapshots) over
  the span, per second;
- ``learner_labels_per_s``: one core applying joined examples to a learner (interest and
  sentiment, with delta tracking), offline in this process.

A benchmark, not a test: the figures move with the machine's load.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from stream.settings import Settings
from stream.tools.bench import BenchError, Span, follow, proc_cpu, proc_memory_mb, relabel, unique
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.demo import WorkerProcess
from stream.tools.produce import produce

SETTLE_SECONDS = 3.0  # the model counts as stopped when no replica moved for this long
FIXED_LOAD_SECONDS = 15


def live(port: int) -> dict[str, Any]:
    """A worker's latest metrics snapshot (``/api/live``); empty when it does not answer."""
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/live", timeout=5).read())["latest"] or {}
    except (OSError, ValueError, KeyError):
        return {}


def ready(port: int) -> dict[str, Any]:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5).read())
    except (OSError, ValueError):
        return {}


def wait_stable(ports: Sequence[int], timeout: float = 120.0) -> None:
    """Until every worker is ready and exactly one holds the learner role."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [ready(p) for p in ports]
        if all(s.get("ready") for s in states) and sum(bool(s.get("learner")) for s in states) == 1:
            return
        time.sleep(0.5)
    raise BenchError(f"the {len(ports)} workers did not settle (ready, one learner) within {timeout:.0f} s")


def versions(ports: Sequence[int]) -> list[int]:
    return [int(live(p).get("model", {}).get("version", -1)) for p in ports]


def learner_rate(settings: Settings, events: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Joined examples per second one learner applies on one core (interest and sentiment learned,
    deltas tracked and taken every 1,000 labels as a worker's learner does every second)."""
    import orjson

    from stream.pipeline.learner import Learner
    from stream.pipeline.processor import Processor
    from stream.pipeline.records import Message

    predictor = Processor(settings)  # the training records the predictors would send
    records: list[bytes] = []
    for i in range(0, len(events), 256):
        out = predictor.process_posts([Message(orjson.dumps(e)) for e in events[i : i + 256]])
        records += [value for _, value in out.training]
    from models.kernels import warm_up

    warm_up()  # compiled before the clock starts, as a worker does before its event loop
    learner = Learner(settings)
    learner.track()
    delta_s = 0.0
    start = time.process_time()
    for offset, value in enumerate(records):
        learner.apply(offset, value, 0)
        if offset % 1000 == 999:
            t = time.process_time()
            learner.take_delta()
            delta_s += time.process_time() - t
    seconds = time.process_time() - start
    return {
        "labels": len(records),
        "labels_per_s": len(records) / seconds if seconds else 0.0,
        "us_per_label": seconds / max(1, len(records)) * 1e6,
        "delta_us_per_label": delta_s / max(1, len(records)) * 1e6,
    }


def run_cluster(
    settings: Settings, events: Sequence[dict[str, Any]], want: int, workers: int, out_dir: Path, rate: float | None
) -> dict[str, Any]:
    """One run with ``workers`` workers: the backlog, then (given ``rate``) a fixed load."""
    s = unique(settings, f"scale{workers}").replace(metrics_interval=1.0)
    procs = [
        WorkerProcess(s.replace(web_port=free_port()), out_dir / f"scale{workers}-{i}.log") for i in range(workers)
    ]
    with ExitStack() as stack:
        for w in procs:
            stack.enter_context(w)
        for w in procs:
            w.wait_ready()
        ports = [w.settings.web_port for w in procs]
        wait_stable(ports)
        pids = [w.proc.pid for w in procs if w.proc is not None]

        def alive() -> bool:
            return all(w.proc is not None and w.proc.poll() is None for w in procs)

        span = Span(s, s.topic_predictions)
        each0 = [proc_cpu(p) for p in pids]
        t0 = time.monotonic()
        learner0 = _learner_bytes(ports)
        produce(s, events, progress=False)
        follow(span, want, timeout=900, alive=alive)
        # then until no replica's model version moved for SETTLE_SECONDS
        last, still_since = versions(ports), time.monotonic()
        while time.monotonic() - still_since < SETTLE_SECONDS and time.monotonic() - t0 < 900:
            time.sleep(0.5)
            now = versions(ports)
            if now != last:
                last, still_since = now, time.monotonic()
        seconds = time.monotonic() - t0 - SETTLE_SECONDS
        each = [proc_cpu(p) - c for p, c in zip(pids, each0, strict=True)]
        cpu = sum(each)
        sent = _learner_bytes(ports) - learner0
        result: dict[str, Any] = {
            "workers": workers,
            "predictions": span.count,
            "eps": span.eps(),
            "cluster_cpu_s": cpu,
            "cluster_cpu_us_per_event": cpu / max(1, span.count) * 1e6,
            "worker_cpu_s": each,
            "model_versions": last,
            "update_bytes_per_s": sent / seconds if seconds > 0 else None,
            "rss_mb": [proc_memory_mb(p) for p in pids],
        }
        if rate:  # a fixed load below what the machine can take: CPU per post without saturation
            repeated = [events[i % len(events)] for i in range(int(rate * FIXED_LOAD_SECONDS))]
            late = relabel(repeated, "fix", 1_500_000_000_000, step_ms=1000.0 / rate)
            before, count0 = sum(proc_cpu(p) for p in pids), span.count
            produce(s, late, rate=rate, progress=False)
            follow(span, count0 + len(late), timeout=120, alive=alive)
            time.sleep(2.0)
            fixed = span.count - count0
            result["fixed_load_cpu_us_per_event"] = (sum(proc_cpu(p) for p in pids) - before) / max(1, fixed) * 1e6
        staleness = [live(p).get("model", {}).get("staleness_ms", {}) for p in ports]
        result["staleness_ms"] = staleness
        p99 = [q.get("p99_ms") for q in staleness if q.get("p99_ms") is not None]
        result["model_staleness_p99_ms"] = max(p99) if p99 else None
        result["fixed_load_eps"] = rate
        span.close()
    return result


def _learner_bytes(ports: Sequence[int]) -> int:
    return sum(int(live(p).get("learner", {}).get("bytes_sent") or 0) for p in ports)


def run_scale(
    settings: Settings, n_events: int, counts: Sequence[int], out_dir: Path, rate: float | None = None
) -> dict[str, Any]:
    """The runs for each of ``counts`` workers on ``n_events`` demo tweets (also ``out_dir/scale.json``)."""
    import orjson

    from stream.pipeline.processor import Processor
    from stream.pipeline.records import Message
    from stream.tools.data import tweets_stream

    out_dir.mkdir(parents=True, exist_ok=True)
    events = tweets_stream()[:n_events]
    count = Processor(settings)
    want = sum(
        len(count.process_posts([Message(orjson.dumps(e)) for e in events[i : i + 256]]).predictions)
        for i in range(0, len(events), 256)
    )
    learner = learner_rate(settings, events)
    print(f"bench: one learner applies {learner['labels_per_s']:,.0f} labels/s on one core", file=sys.stderr)
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if settings.broker is None:
            broker = stack.enter_context(EmbeddedBroker(log_file=out_dir / "broker.log"))
            settings = settings.replace(broker=broker.bootstrap)
        settings = settings.replace(data_dir=str(out_dir / "data"))
        fixed = rate
        for workers in counts:
            runs.append(run_cluster(settings, events, want, workers, out_dir, fixed))
            fixed = fixed or runs[0]["eps"] / 2  # the later counts (and a second pass of the first) at half its rate
        if not rate:  # the first count at that load too, for the ratio at a fixed load
            again = run_cluster(settings, events, want, counts[0], out_dir, fixed)
            runs[0]["fixed_load_cpu_us_per_event"] = again["fixed_load_cpu_us_per_event"]
            r = runs[-1]
            print(
                f"bench: {workers} worker(s): {r['cluster_cpu_us_per_event']:,.0f} CPU µs per post, "
                f"{r['eps']:,.0f} posts/s",
                file=sys.stderr,
            )
    base, top = runs[0], runs[-1]
    stale = [r["model_staleness_p99_ms"] for r in runs[1:] if r["model_staleness_p99_ms"] is not None]
    report = {
        "events": n_events,
        "predictions": want,
        "runs": runs,
        "cluster_cpu_us_per_event": {str(r["workers"]): r["cluster_cpu_us_per_event"] for r in runs},
        "scale_cpu_ratio": top["cluster_cpu_us_per_event"] / base["cluster_cpu_us_per_event"],
        "learner_labels_per_s": learner["labels_per_s"],
        "learner": learner,
        "model_staleness_p99_ms": max(stale) if stale else None,
        "fixed_load_eps": fixed,
        "fixed_load_cpu_ratio": (
            top["fixed_load_cpu_us_per_event"] / base["fixed_load_cpu_us_per_event"]
            if "fixed_load_cpu_us_per_event" in base and "fixed_load_cpu_us_per_event" in top
            else None
        ),
        "update_bytes_per_s": max((r["update_bytes_per_s"] or 0) for r in runs),
    }
    (out_dir / "scale.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def format_scale(r: dict[str, Any]) -> str:
    lines = [f"{'workers':>7} {'posts/s':>8} {'cluster CPU µs/post':>20} {'model versions':>20} {'RSS MB':>14}"]
    for run in r["runs"]:
        lines.append(
            f"{run['workers']:7d} {run['eps']:8,.0f} {run['cluster_cpu_us_per_event']:20,.0f} "
            f"{','.join(map(str, run['model_versions'])):>20} {','.join(f'{m:.0f}' for m in run['rss_mb']):>14}"
        )
    lines.append(f"scale_cpu_ratio ({r['runs'][-1]['workers']} workers / 1, backlog): {r['scale_cpu_ratio']:.2f}")
    if r.get("fixed_load_cpu_ratio") is not None:
        per = " / ".join(f"{run['fixed_load_cpu_us_per_event']:,.0f}" for run in r["runs"])
        lines.append(
            f"at a fixed {r['fixed_load_eps']:,.0f} posts/s: cluster CPU µs/post {per}, "
            f"ratio {r['fixed_load_cpu_ratio']:.2f}"
        )
    lines.append(
        f"learner: {r['learner_labels_per_s']:,.0f} labels/s on one core "
        f"({r['learner']['us_per_label']:.0f} µs per label, of which taking deltas "
        f"{r['learner']['delta_us_per_label']:.1f})"
    )
    stale = r["model_staleness_p99_ms"]
    lines.append(
        f"model staleness p99 (learner → every replica), at half the one-worker rate: "
        f"{'n/a' if stale is None else f'{stale:,.0f} ms'}; model updates {r['update_bytes_per_s'] / 1e3:,.0f} kB/s"
    )
    return "\n".join(lines)
