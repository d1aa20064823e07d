"""Risk rules from central: a safe expression language, signed bundles, evaluation."""
