"""Device drivers: one module per device kind, each a pure codec plus a thin async transport."""
