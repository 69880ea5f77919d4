"""The one place routekit uses a private part of the ``mcp`` SDK: the token-request step of its OAuth provider.

``OAuthClientProvider`` runs the whole MCP authorization flow (protected-resource and authorization-server metadata
discovery, scope selection and step-up, client ID metadata documents, dynamic registration, issuer checks,
refresh). Once discovery and registration are done it builds the token request with ``_perform_authorization()``;
the SDK's own public subclasses (``ClientCredentialsOAuthProvider``, ``PrivateKeyJWTOAuthProvider``) plug their
grants in by overriding that method. There is no public way to choose the grant, or the client's token-endpoint
authentication method, from the authorization server's metadata once it is known (routekit's ``grant: auto`` and
``token_endpoint_auth_method: auto``), and no provider for the RFC 7523 jwt-bearer authorization grant (SEP-1933
workload identity; tracked for the TypeScript SDK in modelcontextprotocol/typescript-sdk#2576, not yet for the
Python SDK). No python-sdk issue asks for such a hook yet; the one to file: "OAuthClientProvider: a public hook
for the token request, called once metadata and client registration are known (choose the grant and the client
authentication there), and a jwt-bearer grant provider (SEP-1933)".

So :func:`token_request_provider` subclasses the provider once and overrides only that method, handing the step
to :meth:`token_request`, a public-named method subclasses implement. ``tests/mcp_bridge/test_compat_mcp.py``
pins the behaviour relied on: the flow asks for the token request after discovery, sends the request returned,
stores the tokens it gets and retries the original request with them.

The ``mcp`` SDK is imported when this module is, so import it only where an auth object is built.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx2
from mcp.client.auth import OAuthClientProvider

__all__ = ["token_request_provider"]


@cache
def token_request_provider() -> Any:
    """``OAuthClientProvider`` with its token-request step handed to ``token_request`` (see the module doc)."""

    class TokenRequestProvider(OAuthClientProvider):
        async def token_request(self) -> httpx2.Request | None:
            """The token request to send once metadata and client registration are known; None for the SDK's
            authorization-code grant (PKCE, through the redirect and callback handlers)."""
            return None

        async def _perform_authorization(self) -> httpx2.Request:
            request = await self.token_request()
            if request is None:
                request = await super()._perform_authorization()
            return request

    return TokenRequestProvider
