"""The proxy: forward an agent's call to the profile's API with the credentials applied.

``ANY /proxy/{connection_id}/{path}`` reaches ``api_base_url`` + ``path``. The use case
(:class:`ProxyService`) plans each call here (policy, token, URL, the injected parts:
``planning``; the caller's body: ``bodies``) and hands the planned request to a
``core.ports.Forwarder``, which speaks HTTP (``authprofiles.forwarding``). Both bodies
stream: the request body is held in memory only when payload fields must be merged into
it, or when it is small enough to replay after a refused token; the response body is
relayed chunk by chunk.
"""

from __future__ import annotations

from authprofiles.core.ports import UpstreamBodyBrokeOff
from authprofiles.services.proxy.bodies import PAYLOAD_LIMIT, REPLAY_LIMIT, BodyTooLarge
from authprofiles.services.proxy.planning import HOP_BY_HOP, IncomingRequest, ProxyPlan
from authprofiles.services.proxy.service import ProxyService, UpstreamResponse

__all__ = [
    "HOP_BY_HOP",
    "PAYLOAD_LIMIT",
    "REPLAY_LIMIT",
    "BodyTooLarge",
    "IncomingRequest",
    "ProxyPlan",
    "ProxyService",
    "UpstreamBodyBrokeOff",
    "UpstreamResponse",
]
