"""What a gateway imports to report usage: UsagePublisher (publisher.py). Traffic tooling
that makes usage lives in services/traffic."""
