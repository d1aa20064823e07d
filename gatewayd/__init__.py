"""gatewayd: the edge daemon that runs one lane of an unattended customs checkpoint."""

__version__ = "0.1.0"
