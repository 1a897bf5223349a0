"""``interest-stream``: the command line. Bad arguments and settings give one line, not a traceback."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import orjson

from stream.logs import configure as configure_logging
from stream.settings import ConfigError, Settings, describe

PROG = "interest-stream"


class UsageError(Exception):
    """A bad command line; printed as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _checked(parse: Callable[[str], float], ok: Callable[[float], bool], must: str) -> Callable[[str], float]:
    """An argparse type: ``parse`` the text, then check it, with one-line messages."""

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole number' if parse is int else 'number'}"
            ) from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} {must}")
        return value

    return convert


_positive_int = _checked(int, lambda v: v >= 1, "must be at least 1")
_positive_float = _checked(float, lambda v: v > 0, "must be positive")
_fraction = _checked(float, lambda v: 0 <= v <= 1, "is not between 0 and 1")
_share = _checked(float, lambda v: 0 < v < 1, "is not strictly between 0 and 1")


def _worker_counts(text: str) -> list[int]:
    """``1,2``: worker counts, the first the baseline (an argparse type with one-line messages)."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of worker counts such as 1,2") from None
    if len(counts) < 2 or any(not 1 <= c <= 8 for c in counts):
        raise argparse.ArgumentTypeError(f"{text} must name at least two worker counts between 1 and 8")
    return counts


def _settings_epilog() -> str:
    return "settings (environment):\n" + "\n".join(f"  {n} [{d}]: {m}" for n, d, m in describe())


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        description="Real-time audience-interest stream processor.",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    w = sub.add_parser("worker", help="run a Faust worker (extra options go to `faust worker`)")
    w.add_argument("faust_args", nargs=argparse.REMAINDER, help="options for faust worker, e.g. -l warning")

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker in the foreground")
    b.add_argument("--port", type=_positive_int, default=9092)
    b.add_argument("--tls-cert", type=Path, help="PEM certificate: clients connect over TLS only (needs stunnel4)")
    b.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")

    pr = sub.add_parser("produce", help="replay a .jsonl, .jsonl.gz or .csv file of posts into the input topic")
    pr.add_argument("file", type=Path, help="the file, or 'tweets' (the demo stream) or 'forum' (forum posts)")
    pr.add_argument("--rate", type=_positive_float, help="events per second (default: as fast as possible)")
    pr.add_argument("--limit", type=_positive_int, help="send at most N posts")
    pr.add_argument(
        "--feedback-fraction",
        type=_fraction,
        default=0.0,
        help="share of labelled posts whose labels are sent later as feedback",
    )
    pr.add_argument("--feedback-delay", type=_positive_int, default=200, help="posts between a post and its feedback")

    d = sub.add_parser("demo", help="embedded broker + worker + replay of real tweets, then a summary")
    d.add_argument("--events", type=_positive_int, help="posts to replay (default: all 38,158)")
    d.add_argument("--out", type=Path, default=Path("demo-out"), help="directory of report.json and logs")
    d.add_argument(
        "--rate",
        type=_positive_float,
        default=400.0,
        help="posts per second offered; latency is measured at this load (default 400)",
    )
    d.add_argument(
        "--fault-rate",
        type=_fraction,
        default=0.005,
        help="share of posts replaced by malformed records, to show the dead-letter path",
    )
    d.add_argument(
        "--feedback-fraction", type=_fraction, default=0.3, help="share of labels sent later on the feedback topic"
    )
    d.add_argument(
        "--keep", action="store_true", help="leave the broker, worker and live page up after the replay, until Ctrl-C"
    )

    e = sub.add_parser("evaluate", help="run the same cleaning and model offline (no Kafka) and report quality")
    e.add_argument(
        "--test",
        type=Path,
        required=True,
        help="events to report on (or 'tweets', 'vader-tweets', 'forum': the named real streams)",
    )
    e.add_argument("--train", type=Path, help="events to learn from first (prequentially)")
    e.add_argument("--frozen", action="store_true", help="do not learn on the test stream")
    e.add_argument(
        "--task",
        choices=["interest", "sentiment"],
        default="interest",
        help="interest (default) or sentiment: the worker's sentiment beside the lexicon alone",
    )
    e.add_argument("--blocks", type=_positive_int, default=10, help="consecutive blocks reported (default 10)")
    e.add_argument(
        "--holdout",
        metavar="INTEREST",
        help="with --test tweets: learn on the other collections, score frozen on this one",
    )
    e.add_argument(
        "--later",
        type=_share,
        metavar="FRACTION",
        help="hold out the last FRACTION of each interest in event time: learn on the rest, "
        "score frozen on these later posts",
    )
    e.add_argument(
        "--baseline",
        action="store_true",
        help="also train a batch TF-IDF + linear SVM on the same posts and score it on the same "
        "test posts (needs scikit-learn, a dev dependency)",
    )
    e.add_argument(
        "--shuffle",
        type=int,
        metavar="SEED",
        help="replay the events in a seeded random order (for files sorted by label); "
        "the same as --order shuffled --seed SEED",
    )
    e.add_argument(
        "--order",
        type=_order,
        default="file",
        help="the order the posts are learned in: file (default), shuffled, or bursts:N "
        "(runs of N posts of one interest, seeded): how a model copes with bursts",
    )
    e.add_argument("--seed", type=int, default=0, help="seed of --order shuffled and bursts:N (default 0)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    bn = sub.add_parser("bench", help="the pipeline against a naive Faust agent and the raw-client limit")
    bn.add_argument("--events", type=_positive_int, default=20_000, help="events preloaded (default 20,000)")
    bn.add_argument("--out", type=Path, default=Path("bench-out"), help="directory of bench.json and logs")
    bn.add_argument(
        "--rate",
        type=_positive_float,
        help="posts/s offered in the latency phase (default: half the pipeline's throughput)",
    )
    bn.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run the pipeline and the peer N times, one pair after another, and report the medians (default 1)",
    )
    bn.add_argument(
        "--layout",
        choices=("single", "split"),
        default="single",
        help="the pipeline as one worker (single, default) or as a posts and an aggregates worker (split)",
    )
    bn.add_argument(
        "--workers",
        type=_worker_counts,
        metavar="N,M",
        help="instead: the cluster's CPU per post with N, then M workers (e.g. 1,2), the learner's rate, "
        "model staleness and update bandwidth",
    )
    bn.add_argument(
        "--memory",
        type=_positive_int,
        metavar="N",
        help="instead: RSS of the processor and learner along N events (offline, no Kafka)",
    )
    bn.add_argument("--audience", action="store_true", help="with --memory: the audience aggregator too")
    bn.add_argument(
        "--distinct",
        action="store_true",
        help="with --memory: each post with a campaign and a hashtag of its own (implies --audience)",
    )
    bn.add_argument("--json", action="store_true", help="print one JSON object")

    c = sub.add_parser("compare", help="prequential comparison of every model candidate on one stream")
    c.add_argument("file", type=Path, help="events (or 'tweets', 'vader-tweets', 'forum': the named real streams)")
    c.add_argument("--models", default=None, help="comma-separated candidates (default: all)")
    c.add_argument("--limit", type=_positive_int)
    c.add_argument(
        "--shuffle",
        type=int,
        metavar="SEED",
        help="replay the events in a seeded random order (for files sorted by label)",
    )
    c.add_argument("--json", action="store_true")
    return p


def _order(text: str) -> str:
    from stream.tools.data import reorder

    try:
        reorder([], text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _events(path: Path, limit: int | None = None, shuffle: int | None = None) -> list:
    import random

    from stream.tools.data import NAMED_STREAMS, read_events

    named = NAMED_STREAMS.get(str(path))
    events = named() if named is not None else list(read_events(path))
    if shuffle is not None:
        random.Random(shuffle).shuffle(events)
    return events[:limit] if limit else events


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from stream.tools.broker import EmbeddedBroker

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError(f"{PROG} broker: --tls-cert and --tls-key go together (see --help)")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            raise UsageError(f"{PROG} broker: {path} is not a file")
    with EmbeddedBroker(port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key) as broker:
        tls = " over TLS" if broker.tls else ""
        print(f"embedded broker on {broker.bootstrap}{tls} (memory-only); Ctrl-C stops it", file=sys.stderr)
        try:
            return broker.wait()
        except KeyboardInterrupt:
            return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    from stream.tools.data import NAMED_STREAMS, read_events
    from stream.tools.produce import produce

    if settings.broker is None:
        raise ConfigError("STREAM_BROKER is not set (e.g. STREAM_BROKER=127.0.0.1:9092)")
    events = _events(args.file) if str(args.file) in NAMED_STREAMS else read_events(args.file)
    sent = produce(
        settings,
        events,
        rate=args.rate,
        limit=args.limit,
        feedback_fraction=args.feedback_fraction,
        feedback_delay=args.feedback_delay,
    )
    print(
        f"sent {sent.posts} posts and {sent.feedback} feedback events to {settings.broker} in {sent.seconds:.1f} s",
        file=sys.stderr,
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from stream.tools.demo import format_report, run_demo

    report = run_demo(
        settings,
        args.events,
        args.out,
        rate=args.rate,
        fault_rate=args.fault_rate,
        feedback_fraction=args.feedback_fraction,
        keep=args.keep,
    )
    if not args.keep:
        print(format_report(report))
    print(f"report: {args.out / 'report.json'}, charts: {args.out / 'report.png'}")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from stream.tools.data import reorder
    from stream.tools.evaluate import evaluate, split_later

    order, seed = ("shuffled", args.shuffle) if args.shuffle is not None else (args.order, args.seed)
    test = reorder(_events(args.test), order, seed)
    train = reorder(_events(args.train), order, seed) if args.train else None
    frozen = args.frozen
    if args.holdout and args.later:
        raise UsageError(f"{PROG} evaluate: --holdout and --later are two different splits; choose one")
    if args.later:
        if args.train:
            raise UsageError(f"{PROG} evaluate: --later splits --test itself; leave out --train")
        train, test = split_later([e for e in test if isinstance(e, dict)], args.later)
        frozen = True
    if args.holdout:
        groups = sorted({e["interest"] for e in test if isinstance(e, dict) and e.get("interest") is not None})
        if args.holdout not in groups:
            raise UsageError(
                f"{PROG} evaluate: --holdout {args.holdout!r} is not an interest of {args.test} "
                f"(choose from {', '.join(groups)})"
            )
        train = [e for e in test if isinstance(e, dict) and e.get("interest") != args.holdout]
        test = [e for e in test if isinstance(e, dict) and e.get("interest") == args.holdout]
        frozen = True
    label = "sentiment" if args.task == "sentiment" else "interest"
    if not any(isinstance(e, dict) and e.get(label) for e in test):
        raise UsageError(f"{PROG} evaluate: {args.test} has no {label} labels to score")
    if args.baseline and not train:
        raise UsageError(f"{PROG} evaluate: --baseline needs posts to train on (--train, --later or --holdout)")
    if args.baseline and args.task != "interest":
        raise UsageError(f"{PROG} evaluate: --baseline is for --task interest")
    try:
        report = evaluate(
            test, train, frozen=frozen, settings=settings, task=args.task, blocks=args.blocks, baseline=args.baseline
        )
    except RuntimeError as exc:  # the baseline without scikit-learn
        raise UsageError(f"{PROG} evaluate: {exc}") from None
    if args.json:
        print(orjson.dumps(report).decode())
    elif args.task == "sentiment":
        print(
            f"sentiment, {report['mode']} on {args.test}{f' ({args.holdout})' if args.holdout else ''}: "
            f"n={report['n']}  worker's model: accuracy={report['accuracy']:.4f} "
            f"macro_f1={report['macro_f1']:.4f}  lexicon alone: accuracy={report['lexicon_accuracy']:.4f} "
            f"macro_f1={report['lexicon_macro_f1']:.4f}"
        )
        print(format_detail(report["detail"]))
    else:
        print(
            f"{report['mode']} on {args.test}: n={report['n']} accuracy={report['accuracy']:.4f} "
            f"macro_f1={report['macro_f1']:.4f} kappa={report['kappa']:.4f} "
            f"({report['events_per_s']:,.0f} events/s, model {report['model']})"
        )
        print(format_detail(report["detail"]))
        for b in report.get("baseline", []):
            print(
                f"batch baseline ({b['model']}, {b['features']}) on the same {b['n']} posts: "
                f"accuracy={b['accuracy']:.4f} macro_f1={b['macro_f1']:.4f}"
            )
    return 0


def format_detail(d: dict) -> str:
    """The evaluation's detail as text tables: per class, per block, per segment."""
    import time as _time

    lines = []
    if "log_loss" in d:
        lines.append(
            f"log-loss {d['log_loss']:.4f}   calibration error (ECE, top class) {d['calibration']['ece']:.4f}"
            f"   unscored (no class known yet) {d['unscored']}"
        )
    lines.append(f"{'class':14} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}")
    lines += [
        f"{c:14} {v['precision']:9.4f} {v['recall']:7.4f} {v['f1']:7.4f} {v['support']:8d}"
        for c, v in d["per_class"].items()
    ]
    lines.append(f"{'block (event time, UTC)':34} {'n':>6} {'accuracy':>8} {'macro-F1':>8} {'kappa':>7}")
    stamp = lambda ms: _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(ms / 1000))  # noqa: E731
    lines += [
        f"{stamp(b['from_ms'])} .. {stamp(b['to_ms'])[11:]:14} {b['n']:6d} {b['accuracy']:8.4f} "
        f"{b['macro_f1']:8.4f} {b['kappa']:7.4f}"
        for b in d["blocks"]
    ]
    for name, groups in d["segments"].items():
        if len(groups) < 2:
            continue  # one value: nothing to compare
        lines.append(f"{name:24} {'n':>6} {'accuracy':>8} {'macro-F1':>8}")
        lines += [
            f"  {value:22} {g['n']:6d} {g['accuracy']:8.4f} {g['macro_f1']:8.4f}"
            for value, g in sorted(groups.items(), key=lambda kv: -kv[1]["n"])
        ]
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from stream.tools.bench import format_bench, format_memory, memory_run, run_bench
    from stream.worker.collect import collect_less

    collect_less()  # what runs in this process (per-stage costs, the limit, --memory) as a worker runs it
    if args.workers:
        from stream.tools.bench_scale import format_scale, run_scale

        scale = run_scale(settings, args.events, args.workers, args.out, args.rate)
        print(orjson.dumps(scale).decode() if args.json else format_scale(scale))
        return 0
    if args.memory:
        rows = memory_run(settings, args.memory, audience=args.audience, distinct=args.distinct)
        print(orjson.dumps(rows).decode() if args.json else format_memory(rows))
        return 0
    report = run_bench(settings, args.events, args.out, args.rate, args.repeat, args.layout)
    print(orjson.dumps(report).decode() if args.json else format_bench(report))
    return 0


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    from models.factory import BASELINES, CANDIDATES
    from stream.tools.evaluate import compare

    known = [*BASELINES, *CANDIDATES]
    names = args.models.split(",") if args.models else known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"{PROG} compare: unknown model {unknown[0]!r} (choose from {', '.join(known)})")
    rows = compare(_events(args.file, args.limit, args.shuffle), names, settings)
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    print(f"{'model':11} {'macro-F1':>8} {'accuracy':>8} {'kappa':>7} {'µs/event':>9} {'size MB':>8}  description")
    for r in rows:
        print(
            f"{r['model']:11} {r['macro_f1']:8.4f} {r['accuracy']:8.4f} {r['kappa']:7.4f} "
            f"{r['us_per_event']:9.0f} {r['size_kb'] / 1024:8.1f}  {r['description']}"
        )
    return 0


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.command != "worker":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        settings = Settings.from_env()
        if args.command == "worker":
            from stream.worker.app import main as worker_main

            # `worker -l warning`: argparse leaves the options it does not know aside, in order
            faust_args = [a for a in argv[argv.index("worker") + 1 :] if a != "--"]
            worker_main(faust_args, settings)
            return 0
        # SIGTERM ends a tool as Ctrl-C does: the brokers and workers it started are stopped on the way out
        signal.signal(signal.SIGTERM, _terminated)
        configure_logging(settings, level=logging.WARNING)
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its failures reach us as exceptions
        if args.command in ("produce", "demo", "bench") and settings.broker is not None:
            from stream.clients import check_connection

            check_connection(settings)  # a refused certificate or login: one line naming the setting
        handler = {
            "broker": cmd_broker,
            "produce": cmd_produce,
            "demo": cmd_demo,
            "evaluate": cmd_evaluate,
            "compare": cmd_compare,
            "bench": cmd_bench,
        }[args.command]
        return handler(args, settings)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for every failure the user can act on
        from stream.audience.rules import RuleError
        from stream.tools.bench import BenchError
        from stream.tools.broker import BrokerError
        from stream.tools.data import DataError
        from stream.tools.demo import DemoError

        if isinstance(exc, (ConfigError, DataError, BrokerError, DemoError, RuleError, BenchError, OSError)):
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
