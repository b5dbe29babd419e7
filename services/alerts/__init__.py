"""Balance alerts and their webhooks (docs/contracts.md, Alerts and Webhooks).

crossings.py    which alerts a run of entries raises (pure)
projection.py   the projector's transaction stores them in its outbox
relay.py        the projector process publishes the outbox on alerts.v1
dispatcher.py   `ledger serve webhooks`: alerts.v1 -> delivery log -> receivers
delivery.py     one signed attempt (signing.py), to a checked address (destinations.py)
schedule.py     what an attempt's outcome does next (pure)
store.py        the SQL of subscriptions, outbox relay and delivery log
"""

# What `ledger backup` copies (services/common/backup.py): the settings, and the delivery
# log, so pending deliveries resume and an alert a rebuild publishes again is not sent twice.
BACKUP_TABLES = (
    "alerts.subscriptions",
    "alerts.deliveries",
    "alerts.delivery_attempts",
    "alerts.counters",
)
