"""AI code actions: offered at once, computed by jobs (fix, docstring, tests, improve, explain)."""
