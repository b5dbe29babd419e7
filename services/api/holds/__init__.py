"""Holds: admission before a request is served (docs/contracts.md, Holds).

requests.py reads the bodies and prices them, store.py holds every SQL statement (the
decisions themselves run as functions of migrations/002_holds.sql, one round trip each),
answers.py turns a decision into the route's answer, relay.py publishes the outbox to
holds.v1.
"""
