"""Analyses of a program's floating-point evaluation: rigorous error bounds (certified
masks) and the underflow-is-a-fault classification."""
