"""OAuth 2.1 for remote MCP servers, on the ``mcp`` SDK's providers.

:func:`build_auth` turns a server's ``auth`` config (:class:`~mcp_bridge.config.AuthConfig`) into the
``httpx2.Auth`` the streamable-HTTP / SSE transports send every request through. Which flow runs:

* **authorization code + PKCE** (the default; ``grant: authorization_code``): discovery of protected-resource and
  authorization-server metadata, dynamic client registration or a client ID metadata document
  (``client_metadata_url``) or a pre-registered ``client_id``/``client_secret``, scope selection and step-up,
  RFC 8707 resources and RFC 9207 ``iss`` checks are the SDK's ``OAuthClientProvider``. The one interactive step,
  sending the user to the authorization URL and getting the redirect back, is a :class:`RedirectHandler`.
* **client credentials** (``grant: client_credentials``): ``client_secret_basic`` / ``client_secret_post`` with
  a secret, ``private_key_jwt`` (RFC 7523 client assertion signed with ``private_key``) with a key.
* **pre-registered client with a secret and no grant** (``grant: auto``): the authorization server's metadata
  decides. A server that offers ``client_credentials`` but not ``authorization_code`` gets client credentials,
  any other gets the authorization-code flow with the pre-registered client. The token-endpoint auth method
  (``token_endpoint_auth_method: auto``) is likewise the first of ``client_secret_basic`` /
  ``client_secret_post`` the server lists (RFC 8414's default, ``client_secret_basic``, when it lists none).
* **workload identity** (``assertion`` or ``assertion_file``, SEP-1933): the RFC 7523 jwt-bearer grant with the
  platform's JWT as ``assertion``. A refused grant is reported, never retried with another grant type.
* **enterprise-managed authorization** (SEP-990, ``idp`` set): the user's ID token is exchanged at the
  identity provider for an identity assertion grant (ID-JAG, RFC 8693), which the SDK's
  ``IdentityAssertionOAuthProvider`` presents to the MCP authorization server (RFC 7523 jwt-bearer). The
  authorization server is ``issuer`` when configured; otherwise it is discovered once from the MCP server's
  protected-resource metadata (RFC 9728), and then pinned for the life of the hub.

Redirect handlers. A :class:`RedirectHandler` receives the authorization URL and returns the parameters the
authorization server put on the redirect back to ``redirect_uri`` (``code``, ``state``, ``iss``). routekit ships
:class:`HeadlessRedirectHandler`, which requests the URL itself and reads the redirect (for authorization servers
that approve without a person, such as test servers and some machine setups). An interactive front end plugs in
its own: a CLI opens ``authorization_url`` in a browser and waits on a loopback listener bound to the
``redirect_uri`` (``http://127.0.0.1:<port>/callback``) for the request carrying ``code`` and ``state``; a web
front end sends the URL to the user's browser as an event and resolves when its callback route is hit. Either
returns :class:`AuthorizationResponse`; the SDK checks ``state`` and ``iss``.

SDK surface. Everything above runs on the SDK's public providers and helpers, with one exception kept in
:mod:`mcp_bridge._compat_mcp`: the token-request step of ``OAuthClientProvider`` (where the grant and the client's
token-endpoint authentication are chosen once the authorization server's metadata is known) has no public hook. A
pre-registered client reaches the SDK through the token store (it offers the configured registration).

Tokens live behind :class:`TokenStore`, which is exactly the SDK's ``mcp.client.auth.TokenStorage`` protocol
(``storage.oauth.StoredTokenStorage`` implements it with encryption at rest); :class:`InMemoryTokenStore` is
the default. The ``mcp`` SDK is imported only when an auth object is built.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urljoin, urlsplit

from mcp_bridge.config import AuthConfig

if TYPE_CHECKING:
    import httpx2
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

__all__ = [
    "AuthorizationResponse",
    "HeadlessRedirectHandler",
    "InMemoryTokenStore",
    "McpAuthError",
    "RedirectHandler",
    "TokenStore",
    "TokenStoreFactory",
    "build_auth",
]

_log = logging.getLogger(__name__)

_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant URN
_ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a token-type URN
_ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class McpAuthError(RuntimeError):
    """Authorizing with a remote MCP server failed. The message never contains a secret or token."""


# --------------------------------------------------------------------------- token storage


@runtime_checkable
class TokenStore(Protocol):
    """Where a server's OAuth tokens and client registration live: the SDK's ``TokenStorage`` protocol."""

    async def get_tokens(self) -> OAuthToken | None: ...

    async def set_tokens(self, tokens: OAuthToken) -> None: ...

    async def get_client_info(self) -> OAuthClientInformationFull | None: ...

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None: ...


TokenStoreFactory = Callable[[str], TokenStore]
"""Builds the store for the server with this name (e.g. ``lambda server: oauth_tokens.storage(user, server)``)."""


class InMemoryTokenStore:
    """Tokens and client registration in memory: they last as long as the process."""

    def __init__(self) -> None:
        self._tokens: OAuthToken | None = None
        self._client_info: OAuthClientInformationFull | None = None

    def __repr__(self) -> str:
        return f"InMemoryTokenStore(tokens={'set' if self._tokens else 'none'})"

    async def get_tokens(self) -> OAuthToken | None:
        return self._tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self._client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._client_info = client_info


# --------------------------------------------------------------------------- redirect handlers


@dataclass(frozen=True)
class AuthorizationResponse:
    """The parameters of the authorization server's redirect back to the client (RFC 6749 §4.1.2, RFC 9207)."""

    code: str
    state: str | None = None
    iss: str | None = None


class RedirectHandler(Protocol):
    """Takes the user to ``authorization_url`` and returns what came back on the redirect URI."""

    async def __call__(self, authorization_url: str) -> AuthorizationResponse: ...


class HeadlessRedirectHandler:
    """Requests the authorization URL itself and reads ``code``/``state``/``iss`` off the redirect.

    For authorization servers that approve without a person (test and machine setups). Redirects are followed
    (up to ``max_hops``) until one carries ``code`` or ``error``; the redirect URI itself is never requested.
    """

    def __init__(self, *, timeout: float = 30.0, max_hops: int = 5) -> None:
        self.timeout = timeout
        self.max_hops = max_hops

    async def __call__(self, authorization_url: str) -> AuthorizationResponse:
        import httpx2

        url = authorization_url
        async with httpx2.AsyncClient(follow_redirects=False, timeout=self.timeout) as client:
            for _ in range(self.max_hops):
                response = await client.get(url)
                location = response.headers.get("location")
                if response.status_code not in (301, 302, 303, 307, 308) or not location:
                    raise McpAuthError(
                        f"the authorization endpoint answered {response.status_code} without a redirect; "
                        "it needs a person: use an interactive redirect handler"
                    )
                url = urljoin(url, location)
                query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                if "error" in query:
                    detail = query.get("error_description", "")
                    raise McpAuthError(f"the authorization server refused: {query['error']} {detail}".strip())
                if "code" in query:
                    return AuthorizationResponse(code=query["code"], state=query.get("state"), iss=query.get("iss"))
        raise McpAuthError(f"no authorization code after {self.max_hops} redirects")


# --------------------------------------------------------------------------- building the auth object


def build_auth(
    auth: AuthConfig,
    server_url: str,
    *,
    store: TokenStore | None = None,
    redirect_handler: RedirectHandler | None = None,
) -> httpx2.Auth:
    """The ``httpx2.Auth`` for one server. Keep it for the server's lifetime: it holds discovered metadata."""
    store = store if store is not None else InMemoryTokenStore()
    grant = auth.resolved_grant()
    if grant == "enterprise":
        return _enterprise(auth, server_url, store)
    if grant == "client_credentials" and auth.private_key is not None:
        return _private_key_jwt(auth, server_url, store)
    return _flexible(auth, server_url, store, redirect_handler or HeadlessRedirectHandler(), grant)


def _private_key_jwt(auth: AuthConfig, server_url: str, store: TokenStore) -> httpx2.Auth:
    from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters

    assert auth.client_id is not None
    assert auth.private_key is not None
    signer = SignedJWTParameters(
        issuer=auth.client_id,
        subject=auth.client_id,
        signing_key=auth.private_key.get_secret_value(),
        signing_algorithm=auth.signing_algorithm,
    )
    provider: httpx2.Auth = _issuer_optional(
        PrivateKeyJWTOAuthProvider,
        server_url=server_url,
        storage=store,
        client_id=auth.client_id,
        assertion_provider=signer.create_assertion_provider(),
        scope=auth.scope,
        issuer=auth.issuer,
    )
    return provider


def _issuer_optional(cls: Any, **kwargs: Any) -> Any:
    """Build an SDK provider whose ``issuer`` is optional; without one the SDK warns (deprecated), which is the
    user's choice recorded in the config, so the warning is not repeated on every connect."""
    import warnings

    if kwargs.get("issuer") is not None:
        return cls(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs)


def _flexible(
    auth: AuthConfig, server_url: str, store: TokenStore, redirect: RedirectHandler, grant: str
) -> httpx2.Auth:
    from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata

    metadata = OAuthClientMetadata(
        redirect_uris=[auth.redirect_uri],
        client_name=auth.client_name,
        scope=auth.scope,
    )
    fixed: OAuthClientInformationFull | None = None
    if auth.client_id is not None:
        secret = auth.client_secret.get_secret_value() if auth.client_secret else None
        method = auth.token_endpoint_auth_method
        fixed = OAuthClientInformationFull(
            redirect_uris=metadata.redirect_uris,
            client_id=auth.client_id,
            client_secret=secret,
            token_endpoint_auth_method=None if method == "auto" else method,
            scope=auth.scope,
            issuer=auth.issuer,
        )
        store = _PreRegistered(store, fixed)
    provider_cls = _flexible_provider_class()
    provider: httpx2.Auth = provider_cls(auth, grant, server_url, metadata, store, redirect, fixed)
    return provider


class _PreRegistered:
    """The server's token store, offering the configured client registration (``client_id``) whenever the store
    holds none for that client: a pre-registered client is used as is, never registered dynamically."""

    def __init__(self, store: TokenStore, fixed: OAuthClientInformationFull) -> None:
        self._store = store
        self.fixed = fixed

    def __repr__(self) -> str:
        return f"_PreRegistered({self._store!r}, client_id={self.fixed.client_id!r})"

    async def get_tokens(self) -> OAuthToken | None:
        return await self._store.get_tokens()

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._store.set_tokens(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        stored = await self._store.get_client_info()
        if stored is None or stored.client_id != self.fixed.client_id:
            return self.fixed
        return stored

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._store.set_client_info(client_info)


def _token_endpoint(context: Any) -> str:
    """The authorization server's token endpoint: from its metadata, else ``/token`` at the server's origin (the
    2025-03-26 fallback, as the SDK's own grants do)."""
    metadata = context.oauth_metadata
    if metadata is not None and metadata.token_endpoint:
        return str(metadata.token_endpoint)
    return urljoin(str(context.get_authorization_base_url(context.server_url)), "/token")


_provider_cls: Any = None


def _flexible_provider_class() -> Any:
    """Defined on first use: subclassing the SDK's provider at import time would import the SDK eagerly."""
    global _provider_cls
    if _provider_cls is not None:
        return _provider_cls

    import httpx2
    from mcp.client.auth import AuthorizationCodeResult

    from mcp_bridge._compat_mcp import token_request_provider

    class FlexibleOAuthProvider(token_request_provider()):  # type: ignore[misc]
        """The SDK's authorization-code provider plus pre-registered clients, client credentials, workload identity
        (jwt-bearer) and a grant and token-endpoint auth method chosen from the authorization server's metadata
        when the config leaves them open."""

        def __init__(
            self,
            auth: AuthConfig,
            grant: str,
            server_url: str,
            metadata: Any,
            store: TokenStore,
            redirect: RedirectHandler,
            fixed: OAuthClientInformationFull | None,
        ) -> None:
            self._pending: AuthorizationResponse | None = None
            self._redirect = redirect
            super().__init__(
                server_url,
                metadata,
                store,
                redirect_handler=self._on_redirect,
                callback_handler=self._on_callback,
                client_metadata_url=auth.client_metadata_url,
            )
            self._grant = grant
            self._auth_method = auth.token_endpoint_auth_method
            self._assertion = auth.assertion
            self._assertion_file = auth.assertion_file
            self._fixed = fixed

        async def _on_redirect(self, authorization_url: str) -> None:
            self._pending = await self._redirect(authorization_url)

        async def _on_callback(self) -> Any:
            pending, self._pending = self._pending, None
            if pending is None:
                raise McpAuthError("the redirect handler returned no authorization response")
            return AuthorizationCodeResult(code=pending.code, state=pending.state, iss=pending.iss)

        def _use_client_credentials(self) -> bool:
            if self._grant == "client_credentials":
                return True
            if self._grant != "auto":
                return False
            supported = (self.context.oauth_metadata.grant_types_supported or []) if self.context.oauth_metadata else []
            return "client_credentials" in supported and "authorization_code" not in supported

        def _choose_auth_method(self) -> None:
            info = self._fixed
            if self._auth_method != "auto" or info is None or self.context.client_info is not info:
                return  # the method is configured, or the client is not the pre-registered one
            if info.client_secret is None:
                return
            listed = (
                self.context.oauth_metadata.token_endpoint_auth_methods_supported
                if self.context.oauth_metadata
                else None
            ) or ["client_secret_basic"]
            method = next((m for m in listed if m in ("client_secret_basic", "client_secret_post")), None)
            if method is not None:
                self.context.client_info = info.model_copy(update={"token_endpoint_auth_method": method})

        async def _workload_assertion(self) -> str:
            if self._assertion_file is not None:
                import anyio

                text = await anyio.Path(self._assertion_file).read_text()
                return text.strip()
            assert self._assertion is not None
            return self._assertion.get_secret_value()

        async def token_request(self) -> httpx2.Request | None:
            self._choose_auth_method()
            data: dict[str, str]
            if self._grant == "jwt_bearer":
                data = {"grant_type": _JWT_BEARER, "assertion": await self._workload_assertion()}
                if self.context.client_info is not None:
                    data["client_id"] = self.context.client_info.client_id
            elif self._use_client_credentials():
                data = {"grant_type": "client_credentials"}
            else:
                return None  # the SDK's authorization-code grant
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            data, headers = self.context.prepare_token_auth(data, headers)
            if self.context.should_include_resource_param(self.context.protocol_version):
                data["resource"] = self.context.get_resource_url()
            if self.context.client_metadata.scope:
                data["scope"] = self.context.client_metadata.scope
            return httpx2.Request("POST", _token_endpoint(self.context), data=data, headers=headers)

    _provider_cls = FlexibleOAuthProvider
    return _provider_cls


# --------------------------------------------------------------------------- enterprise-managed authorization


def _enterprise(auth: AuthConfig, server_url: str, store: TokenStore) -> httpx2.Auth:
    import httpx2

    assert auth.idp is not None
    idp = auth.idp
    method = auth.token_endpoint_auth_method

    async def fetch_id_jag(audience: str, resource: str) -> str:
        """RFC 8693 token exchange at the IdP: the user's ID token for an ID-JAG naming this AS and resource."""
        import httpx2

        if idp.id_token is None:
            raise McpAuthError("enterprise authorization needs the user's ID token (auth.idp.id_token)")
        data = {
            "grant_type": _TOKEN_EXCHANGE,
            "subject_token": idp.id_token.get_secret_value(),
            "subject_token_type": _ID_TOKEN_TYPE,
            "requested_token_type": _ID_JAG_TYPE,
            "audience": audience,
            "resource": resource,
            "client_id": idp.client_id,
        }
        if auth.scope:
            data["scope"] = auth.scope
        if idp.client_secret is not None:
            data["client_secret"] = idp.client_secret.get_secret_value()
        async with httpx2.AsyncClient(timeout=30.0) as client:
            response = await client.post(idp.token_endpoint, data=data)
        if response.status_code != 200:
            raise McpAuthError(f"the identity provider refused the token exchange (HTTP {response.status_code})")
        body = response.json()
        if body.get("issued_token_type") not in (None, _ID_JAG_TYPE) or not body.get("access_token"):
            raise McpAuthError("the identity provider's token exchange did not return an ID-JAG")
        return str(body["access_token"])

    def make(issuer: str) -> httpx2.Auth:
        from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider

        assert auth.client_id is not None
        assert auth.client_secret is not None
        provider: httpx2.Auth = IdentityAssertionOAuthProvider(
            server_url=server_url,
            storage=store,
            client_id=auth.client_id,
            client_secret=auth.client_secret.get_secret_value(),
            issuer=issuer,
            assertion_provider=fetch_id_jag,
            scope=auth.scope,
            token_endpoint_auth_method="client_secret_post"
            if method == "client_secret_post"
            else "client_secret_basic",
        )
        return provider

    if auth.issuer is not None:
        return make(auth.issuer)

    class DiscoveringIdentityAssertion(httpx2.Auth):
        """Finds the authorization server from the resource's metadata on the first 401, then delegates."""

        requires_response_body = True

        def __init__(self) -> None:
            self._inner: httpx2.Auth | None = None

        async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
            from mcp.client.auth.utils import (
                build_protected_resource_metadata_discovery_urls,
                create_oauth_metadata_request,
                extract_resource_metadata_from_www_auth,
                handle_protected_resource_response,
            )

            if self._inner is None:
                response = yield request
                if response.status_code != 401:
                    return
                hinted = extract_resource_metadata_from_www_auth(response)
                for url in build_protected_resource_metadata_discovery_urls(hinted, server_url):
                    prm = yield create_oauth_metadata_request(url)
                    for _ in range(_REDIRECTS):  # the metadata moved within its origin
                        moved = _redirect_within_origin(prm)
                        if moved is None:
                            break
                        prm = yield moved
                    metadata = await handle_protected_resource_response(prm)
                    if metadata is not None and metadata.authorization_servers:
                        self._inner = make(str(metadata.authorization_servers[0]))
                        break
                if self._inner is None:
                    raise McpAuthError("the server publishes no authorization server; set auth.issuer")
            flow = self._inner.async_auth_flow(request)
            try:
                outgoing = await flow.__anext__()
                while True:
                    incoming = yield outgoing
                    outgoing = await flow.asend(incoming)
            except StopAsyncIteration:
                return
            finally:
                await flow.aclose()

    return DiscoveringIdentityAssertion()


_REDIRECTS = 5  # redirects one discovery request may follow within its origin (as the SDK's own flows do)


def _redirect_within_origin(response: httpx2.Response) -> httpx2.Request | None:
    """The request following ``response``'s redirect when it keeps the method and stays on the origin of the request
    sent (or is its https upgrade on the default ports), with no userinfo of its own; None otherwise."""
    follow: httpx2.Request | None = getattr(response, "next_request", None)
    if follow is None:
        return None
    sent, to = response.request, follow.url
    if follow.method != sent.method or (to.userinfo and to.userinfo != sent.url.userinfo):
        return None
    same = (sent.url.scheme, sent.url.host, sent.url.port) == (to.scheme, to.host, to.port)
    upgrade = sent.url.host == to.host and (sent.url.scheme, to.scheme) == ("http", "https") and not sent.url.port
    return follow if same or (upgrade and to.port is None) else None
