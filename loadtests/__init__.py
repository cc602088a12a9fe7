"""locust load tests of the API, run against a stack the harness started on 127.0.0.1 (``make load``)."""
