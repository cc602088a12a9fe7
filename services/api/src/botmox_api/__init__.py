"""Bot-Mox control-plane API v1."""
