"""What the server's pages share: the services behind them, and how an HTML answer is
described in the OpenAPI schema."""

from __future__ import annotations

from fastapi import Request

from authprofiles.composition import Services

#: An HTML answer, for a route's ``responses`` ``content``.
HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}


def services_of(request: Request) -> Services:
    """The app's services (a dependency of the page routes)."""
    services: Services = request.app.state.services
    return services


__all__ = ["HTML_PAGE", "services_of"]
