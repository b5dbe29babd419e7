"""Traffic tooling: synthetic load, replay and record of usage.v1 (not what gateways import)."""
