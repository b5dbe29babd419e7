"""API keys: the store (services/api/keys/store.py), the per-process cache that hears of
revocations (ring.py) and `ledger keys` (command.py); docs/contracts.md, Authentication."""
