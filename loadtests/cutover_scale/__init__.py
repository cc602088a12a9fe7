"""``make cutover-scale``: the storage-policy cutover tool against N seeded tenants, each step timed."""
