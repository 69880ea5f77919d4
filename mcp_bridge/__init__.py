"""routekit's MCP client side: server config, the hub of live connections, result translation, callbacks.

Importing this package is cheap: the ``mcp`` SDK is imported only when the hub connects.
"""

from mcp_bridge.auth import (
    AuthorizationResponse,
    HeadlessRedirectHandler,
    InMemoryTokenStore,
    McpAuthError,
    RedirectHandler,
    TokenStore,
    TokenStoreFactory,
    build_auth,
)
from mcp_bridge.callbacks import (
    ElicitationHandler,
    ElicitationRequest,
    ElicitationResponse,
    ProgressCallback,
    ProgressEvent,
    SamplingHandler,
    SamplingRequest,
    SamplingResponse,
    accept_defaults,
    apply_schema_defaults,
)
from mcp_bridge.config import (
    AuthConfig,
    IdpConfig,
    McpConfig,
    McpConfigError,
    RootConfig,
    ServerConfig,
    load_config,
    parse_config,
)
from mcp_bridge.hub import McpError, McpHub, PromptArgumentInfo, PromptInfo, PromptResult, ResourceInfo, ServerStatus
from mcp_bridge.results import DEFAULT_MAX_RESULT_BYTES, error_result, to_tool_result

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "AuthConfig",
    "AuthorizationResponse",
    "ElicitationHandler",
    "ElicitationRequest",
    "ElicitationResponse",
    "HeadlessRedirectHandler",
    "IdpConfig",
    "InMemoryTokenStore",
    "McpAuthError",
    "McpConfig",
    "McpConfigError",
    "McpError",
    "McpHub",
    "ProgressCallback",
    "ProgressEvent",
    "PromptArgumentInfo",
    "PromptInfo",
    "PromptResult",
    "RedirectHandler",
    "ResourceInfo",
    "RootConfig",
    "SamplingHandler",
    "SamplingRequest",
    "SamplingResponse",
    "ServerConfig",
    "ServerStatus",
    "TokenStore",
    "TokenStoreFactory",
    "accept_defaults",
    "apply_schema_defaults",
    "build_auth",
    "error_result",
    "load_config",
    "parse_config",
    "to_tool_result",
]
