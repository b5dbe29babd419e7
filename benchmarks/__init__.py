"""`ledger bench`: throughput, freshness, rebuild, baseline and resources in one run."""
