"""Balance alerts and their webhooks (docs/contracts.md, Alerts and Webhooks).

crossings.py    which alerts a run of entries raises (pure)
projection.py   the projector's transaction stores them in its outbox
relay.py        the projector process publishes the outbox on alerts.v1
dispatcher.py   `ledger serve webhooks`: alerts.v1 -> delivery log -> receivers
delivery.py     one signed attempt (signing.py), to a checked address (destinations.py)
schedule.py     what an attempt's outcome does next (pure)
store.py        the SQL of subscriptions, outbox relay and delivery log
"""
