"""The live audience: partial aggregates, event-time windows, spikes, campaign trigger rules and
user-interest profiles.

Plain code with no Faust and no Kafka client; the worker keeps the states it returns in Faust tables.
"""
