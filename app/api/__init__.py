"""The versioned HTTP API."""
