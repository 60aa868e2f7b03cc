"""The canary judge benchmark: detection and false rollbacks of our judge vs fixed thresholds."""
