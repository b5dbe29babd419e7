"""The projector: applies ledger.v1 to the PostgreSQL projection.

Its surface for the rest of the code (the audit, the rebuild, the tests): open a projection
schema, `prepare` a batch of ledger.v1 messages (grants and adjustments authenticated with
the verify keys), `apply` it; `within_limit`, the balance limit rule
the API checks before it accepts a grant or an adjustment. The live loop
(services/projector/service.py) uses the very same calls.
"""

from services.projector.apply import Batch, apply, prepare
from services.projector.ledger import status_for, within_limit
from services.projector.store import LIVE_SCHEMA, SCHEMA_NAME, ApplyResult, open_projection

__all__ = [
    "LIVE_SCHEMA",
    "SCHEMA_NAME",
    "ApplyResult",
    "Batch",
    "apply",
    "open_projection",
    "prepare",
    "status_for",
    "within_limit",
]
