"""Zi Coder over the Model Context Protocol: its tools served to coding agents
(``zi-coder mcp``), and the client manager (``client/``) drawing context from other
MCP servers.

Only this package imports the ``mcp`` SDK (about a second to import), and only when
it is used: when ``zi-coder mcp`` runs, or in the language server lazily, at the
first use of the client manager (only with ``mcp.servers_file`` set).
"""
