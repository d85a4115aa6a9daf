"""ComponentResources of safeguard: one per module, each describing its services once."""
