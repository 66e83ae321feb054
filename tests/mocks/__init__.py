"""Mock upstreams (providers) for the integration tests."""
