"""The OAuth 2.0 engine: the only package that imports authlib.

One module per concern: ``responses`` (RFC 6749 section 5), ``grants`` (sections 4
and 6 with RFC 7636 PKCE and RFC 7009 revocation), ``client_auth`` (section 2.3.1's
form-encoded HTTP Basic credentials), ``discovery`` (RFC 8414 and OpenID Connect
Discovery), ``transport`` (shared connection pools, egress proxies).
"""
