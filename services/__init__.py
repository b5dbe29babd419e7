"""The credit ledger's services. The version is the installed package's (pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("credit-ledger")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
