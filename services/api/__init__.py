"""The HTTP API (docs/contracts.md, HTTP API): reads the projection, publishes credit grants."""
