"""Planted defects for the gradient audit's own checks (``tests/test_grad_audit_checks.py``)."""
