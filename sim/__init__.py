"""Simulated hardware and traffic. Imported only by tests, benchmarks and `gatewayd sim`."""
