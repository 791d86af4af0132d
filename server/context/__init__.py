"""Context drawn from outside the document for the heavy path (reviews and code actions).

Plain Python, no SDK types: the MCP client manager (server/mcp/client/) implements
``ContextSource``; the features only see ``ContextItem``s, which travel to the job as
JSON and are fenced into the prompt as untrusted data (``server.context.prompt``).
"""
