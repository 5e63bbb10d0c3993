"""Lowering: the straight-line program (op table, :class:`Program`, verifier, interpreter
skeleton), the plan of what to evaluate and its power-of-two gauge."""
