"""Pricing: usage.v1 to ledger.v1 debits, and `ledger redrive`."""

# What `ledger backup` copies (services/common/backup.py): the DLQ records already redriven.
BACKUP_TABLES = ("redrive.redriven",)
