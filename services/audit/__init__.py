"""Audit beside the pipeline: `ledger audit`, `ledger reprice` and `ledger rebuild`.

Exit codes (all three): 0 when the projection equals the log / there is no drift / the
rebuild finished; 1 with a report of every difference / any drift / a failed rebuild; 2 when
the command cannot run (missing confirmation, unreadable price book, no live projection).
"""
