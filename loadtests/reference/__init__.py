"""Reference servers the bench measures the API against (``floor.py``: the floor)."""
