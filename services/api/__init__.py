"""The HTTP API (DESIGN.md, HTTP API): reads the projection, publishes credit grants."""
