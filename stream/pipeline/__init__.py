"""The per-post work: decode, validate, clean, pseudonymise, featurize, predict, and the learner.

Plain, typed code with no Faust and no Kafka client: the worker's agents, the offline tools and the
tests all call the same :class:`~stream.pipeline.processor.Processor`.
"""
