"""The MCP client manager: other MCP servers drawn on as context by reviews and code actions."""
