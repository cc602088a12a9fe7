"""Stores: the seam between the API and its data backends."""
