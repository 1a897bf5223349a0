"""The Faust runtime: the app, its agents, timers and web pages, publishing, tables, the transport
hooks, Prometheus sensors and the model replica. Nothing here imports :mod:`stream.tools`.
"""
