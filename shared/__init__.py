"""Pollinate's shared package: event contracts and platform plumbing.

It carries what every service needs to take part in the platform (the event envelope and
payload contracts, the topic registry, the transactional outbox and its relay, the idempotent
inbox consumer, dead letters, tracing, settings, logging, health) and never one service's
business rules.
"""
