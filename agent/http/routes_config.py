"""Provider keys (``/api/user/llm-config``) and the provider catalogue (``/api/providers``).

Keys are write-only: they go in through POST/PUT and come out only as the masked form.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agent.http.deps import CurrentUser, State
from agent.http.ssrf import check_provider_config
from providers.base import ProviderConfig, create_provider
from providers.errors import ConfigError, ProviderError, scrub
from providers.profiles import PROFILES, OutputMode, PromptCaching, ThinkingControl, listed_model
from storage import ProviderConfigRecord

router = APIRouter(tags=["provider keys"])


class LlmConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="Provider or preset name, see GET /api/providers", examples=["openai"])
    api_key: SecretStr | None = Field(default=None, description="Write-only; answered only in masked form")
    label: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=2000, description="Endpoint override (checked for SSRF)")
    default_model: str | None = Field(default=None, max_length=200)
    extra_headers: dict[str, SecretStr] = Field(default_factory=dict, description="Write-only extra headers")
    options: dict[str, Any] = Field(default_factory=dict)
    default: bool = Field(default=False, description="Make this the default config for its provider")


class LlmConfigUpdate(BaseModel):
    """What can change on a stored config: its secrets (re-entered whole) and whether it is the default."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(default=None, description="New key (write-only); omit to keep the current one")
    extra_headers: dict[str, SecretStr] | None = None
    default: bool | None = None


class LlmConfigOut(BaseModel):
    id: str
    provider: str
    label: str | None
    base_url: str | None
    default_model: str | None
    is_default: bool
    status: str
    api_key_masked: str | None
    extra_header_names: list[str]
    options: dict[str, Any]
    error: str | None = Field(default=None, description="Why the config cannot be used (status 'unreadable')")

    @classmethod
    def of(cls, record: ProviderConfigRecord) -> LlmConfigOut:
        return cls(
            id=record.id,
            provider=record.provider,
            label=record.label,
            base_url=record.base_url,
            default_model=record.default_model,
            is_default=record.is_default,
            status=record.status,
            api_key_masked=record.api_key_masked,
            extra_header_names=list(record.extra_header_names),
            options=record.options,
            error=record.error,
        )


class CheckOut(BaseModel):
    ok: bool
    provider: str
    detail: str
    models_visible: int | None = None


class ProviderOut(BaseModel):
    name: str
    display_name: str
    family: str
    requires_key: bool
    local: bool
    default_base_url: str | None
    suggested_model: str | None
    notes: list[str]


class ModelOut(BaseModel):
    """A model the key can use, with routekit's profile of it (``providers.profiles.profile_for``; null: unknown).

    ``context_window`` and ``max_output_tokens`` are the provider's listing where it gives them, else the
    profile's."""

    id: str
    provider: str
    display_name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    family: str = Field(description="The model family of the profile that matched, or '(provider default)'")
    tools: bool | None = None
    parallel_tools: bool | None = None
    vision: bool | None = None
    strict_schemas: bool
    output_mode: OutputMode | None = None
    thinking: ThinkingControl | None = None
    thinking_field: str | None = Field(default=None, description="The request field that carries thinking")
    prompt_caching: PromptCaching | None = None
    max_tokens_field: str = Field(description="The request field that carries the output limit")
    nonstreaming_max_tokens: int | None = None
    tool_result_media: bool | None = None
    tool_name_max_length: int
    tool_name_pattern: str


def _secret_values(values: dict[str, SecretStr] | None) -> dict[str, str] | None:
    return None if values is None else {k: v.get_secret_value() for k, v in values.items()}


@router.get("/api/user/llm-config", response_model=list[LlmConfigOut], summary="List your provider configs")
async def list_configs(user: CurrentUser, state: State) -> list[LlmConfigOut]:
    return [LlmConfigOut.of(r) for r in await state.store.provider_configs.list(user.id)]


@router.post("/api/user/llm-config", response_model=LlmConfigOut, status_code=201, summary="Add a provider key")
async def create_config(body: LlmConfigIn, user: CurrentUser, state: State) -> LlmConfigOut:
    if body.provider not in PROFILES:
        raise HTTPException(400, f"unknown provider {body.provider!r}; GET /api/providers lists the valid names")
    await _usable_config(
        state,
        provider=body.provider,
        api_key=body.api_key,
        base_url=body.base_url,
        default_model=body.default_model,
        extra_headers=body.extra_headers,
        options=body.options,
    )
    record = await state.store.provider_configs.create(
        user.id,
        body.provider,
        api_key=body.api_key,
        label=body.label,
        base_url=body.base_url,
        default_model=body.default_model,
        extra_headers=_secret_values(body.extra_headers) or None,
        options=body.options,
        default=body.default,
    )
    return LlmConfigOut.of(record)


@router.get("/api/user/llm-config/{config_id}", response_model=LlmConfigOut, summary="One provider config")
async def get_config(config_id: str, user: CurrentUser, state: State) -> LlmConfigOut:
    return LlmConfigOut.of(await state.store.provider_configs.get(user.id, config_id))


@router.put("/api/user/llm-config/{config_id}", response_model=LlmConfigOut, summary="Replace the key or set default")
async def update_config(config_id: str, body: LlmConfigUpdate, user: CurrentUser, state: State) -> LlmConfigOut:
    configs = state.store.provider_configs
    record = await configs.get(user.id, config_id)  # 404 for another user's id
    if body.api_key is not None or body.extra_headers is not None:
        # The storage call replaces both secrets; keep the one that was not re-entered.
        key: SecretStr | None = body.api_key
        headers = _secret_values(body.extra_headers)
        if key is None or (headers is None and record.extra_header_names):
            try:
                current = await configs.resolve(user.id, config_id)
            except ConfigError:
                current = None  # undecryptable: whatever was not re-entered is gone anyway
            if current is not None:
                key = key if key is not None else current.api_key
                headers = headers if headers is not None else current.header_values()
        await _usable_config(
            state,
            provider=record.provider,
            api_key=key,
            base_url=record.base_url,
            default_model=record.default_model,
            extra_headers=headers or {},
            options=record.options,
        )
        record = await configs.update_secrets(user.id, config_id, api_key=key, extra_headers=headers)
    if body.default:
        await configs.set_default(user.id, config_id)
        record = await configs.get(user.id, config_id)
    return LlmConfigOut.of(record)


@router.delete("/api/user/llm-config/{config_id}", status_code=204, summary="Delete a provider config")
async def delete_config(config_id: str, user: CurrentUser, state: State) -> Response:
    await state.store.provider_configs.get(user.id, config_id)
    await state.store.provider_configs.delete(user.id, config_id)
    return Response(status_code=204)


@router.post("/api/user/llm-config/{config_id}/test", response_model=CheckOut, summary="Check a key (no tokens spent)")
async def test_config(config_id: str, user: CurrentUser, state: State) -> CheckOut:
    config = await _resolve(state, user.id, config_id)
    await check_provider_config(config, state.egress)  # checked at use too: the operator's policy may have changed
    try:
        provider = create_provider(config, egress=state.egress)
    except ConfigError as exc:
        return CheckOut(ok=False, provider=config.provider, detail=scrub(str(exc), config.secrets()))
    try:
        result = await provider.check()
    except ProviderError as exc:
        return CheckOut(ok=False, provider=config.provider, detail=scrub(str(exc), config.secrets()))
    finally:
        await provider.aclose()
    return CheckOut(
        ok=result.ok,
        provider=result.provider,
        detail=scrub(result.detail, config.secrets()),
        models_visible=result.models_visible,
    )


@router.get("/api/providers", response_model=list[ProviderOut], summary="Providers and presets routekit can use")
async def list_providers(user: CurrentUser) -> list[ProviderOut]:
    del user  # signed-in users only, like everything under /api
    return [
        ProviderOut(
            name=p.name,
            display_name=p.display_name,
            family=p.family,
            requires_key=p.requires_key,
            local=p.local,
            default_base_url=p.default_base_url,
            suggested_model=p.suggested_model,
            notes=list(p.notes),
        )
        for p in PROFILES.values()
    ]


@router.get(
    "/api/providers/{provider}/models", response_model=list[ModelOut], summary="Models visible with your stored key"
)
async def list_models(provider: str, user: CurrentUser, state: State, config_id: str | None = None) -> list[ModelOut]:
    if provider not in PROFILES:
        raise HTTPException(404, f"unknown provider {provider!r}; GET /api/providers lists the valid names")
    configs = state.store.provider_configs
    if config_id is not None:
        record = await configs.get(user.id, config_id)
        if record.provider != provider:
            raise HTTPException(404, f"config {config_id!r} is not a {provider} config")
    else:
        found = await configs.default_for(user.id, provider)
        if found is None:
            raise HTTPException(404, f"no stored {provider} config: add one with POST /api/user/llm-config")
        record = found
    config = await _resolve(state, user.id, record.id)
    await check_provider_config(config, state.egress)
    try:
        client = create_provider(config, egress=state.egress)
    except ConfigError as exc:
        raise HTTPException(409, scrub(str(exc), config.secrets())) from None
    try:
        models = await client.list_models()
    except ProviderError as exc:
        raise HTTPException(502, scrub(str(exc), config.secrets())) from None
    finally:
        await client.aclose()
    return [ModelOut.model_validate(listed_model(m)) for m in models]


async def _usable_config(state: State, **fields: Any) -> None:
    """400 unless the service could use a config of these fields for this user, checked before anything is
    stored: its shape (URL, headers), its effective URL against the egress policy, and the adapter built with
    it under that policy (a key where the provider needs one, since the service never lends its own; options
    the adapter accepts)."""
    try:
        config = ProviderConfig(**fields)
    except ValueError as exc:
        raise HTTPException(400, _first_error(exc)) from None
    await check_provider_config(config, state.egress)
    try:
        adapter = create_provider(config, egress=state.egress)
    except ConfigError as exc:
        raise HTTPException(400, scrub(str(exc), config.secrets())) from None
    await adapter.aclose()


async def _resolve(state: State, user_id: str, config_id: str) -> ProviderConfig:
    try:
        return await state.store.provider_configs.resolve(user_id, config_id, max_retries=0)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    return str(exc)
