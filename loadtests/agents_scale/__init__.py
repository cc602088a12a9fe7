"""``make agents-scale``: simulated agents on one API worker (``python -m loadtests.agents_scale``)."""
