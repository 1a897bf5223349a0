"""Tooling around the worker: the embedded broker, the demo and its report, replaying files,
offline evaluation, benchmarks and the named data streams. A worker never imports these.
"""
