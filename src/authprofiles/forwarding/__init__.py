"""The proxy's forwarding: sends a planned request upstream and relays the answer.

The planning (policy, token, URL, injected parts) lives in ``services.proxy``; this
package only speaks HTTP, behind ``core.ports.Forwarder``.
"""

from __future__ import annotations

from authprofiles.forwarding.aiohttp_forwarder import AiohttpForwarder

__all__ = ["AiohttpForwarder"]
