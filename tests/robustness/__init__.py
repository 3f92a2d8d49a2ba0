"""Planted implementations for tests/test_robustness.py: ones that crash, hang or try to end the process."""
