"""The MCP server face: agents call through authprofiles with the Model Context Protocol.

``server``: ``/mcp`` over streamable HTTP, an OAuth-protected resource whose tokens are
agent grants (``authorization``: its metadata and this server's token endpoint), its tools
(``tools``) calling the use cases in-process (``calls``). ``stdio``: ``authprofiles mcp``, the
same tools over stdio, relayed to a running server's ``/mcp``.

Nothing is imported here, so the stdio face loads none of the server's code.
"""
