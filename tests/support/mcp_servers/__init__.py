"""Small MCP servers run as subprocesses by the MCP client manager's tests."""
