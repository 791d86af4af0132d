"""Zi Coder over the Model Context Protocol: its tools served to coding agents.

Only this package imports the ``mcp`` SDK (about a second to import), and only when
``zi-coder mcp`` runs.
"""
