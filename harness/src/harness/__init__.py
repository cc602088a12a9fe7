"""Test and development harness: throwaway stores and the local stack."""
