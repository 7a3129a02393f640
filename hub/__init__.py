"""The real-time hub: event encoding, the connection registry, fan-out and the broker seam."""
