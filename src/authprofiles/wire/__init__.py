"""Rules of the wire that the server and the SDK share, with no I/O and no dependencies.

``injection``: where a connection's credentials go in a request (RFC 6750 section 2.1 and
the profile's authorization fields), and what a caller's path or body may not do.
``refresh_once``: when a refused credential is refreshed and the request sent again.

Only the standard library is imported here: the server's core and the SDK (which must
install with nothing but httpx and requests) both build on it.
"""
