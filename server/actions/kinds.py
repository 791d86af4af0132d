"""Code-action kinds Zi offers (import-free: the fast initialize answer lists them)."""

QUICKFIX = "quickfix"
DOCSTRING = "refactor.rewrite.zi.docstring"
TESTS = "refactor.rewrite.zi.tests"
IMPROVE = "refactor.rewrite.zi.improve"
KINDS = (QUICKFIX, DOCSTRING, TESTS, IMPROVE)
