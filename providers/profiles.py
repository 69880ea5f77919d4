"""Provider profiles: the rules routekit follows for each provider, as data.

Each rule is a line with its reason beside it (the provider's error text, doc or issue), so that the
next person can see why it exists and delete it when the provider changes. Adapters, the schema
compiler and the history normalizer read these profiles instead of hard-coding provider names.

Two layers: :class:`Profile` per provider or OpenAI-compatible preset (endpoint, key, naming rules, schema
target), and :class:`ModelProfile` per model of a provider, from :func:`profile_for` (capabilities and the
request fields that carry them, by model family; the data and its sources are in
:mod:`providers._model_families`).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from providers.types import ModelInfo

Family = Literal["anthropic", "openai", "gemini", "ollama"]
SchemaTarget = Literal["anthropic", "openai", "gemini", "ollama"]


@dataclass(frozen=True, slots=True)
class NameRule:
    """What a provider accepts as a tool name."""

    pattern: re.Pattern[str]
    max_length: int
    reason: str

    def accepts(self, name: str) -> bool:
        return len(name) <= self.max_length and self.pattern.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class IdRule:
    """What a provider accepts as a tool-call id (in history it is sent back)."""

    pattern: re.Pattern[str]
    max_length: int
    exact_length: int | None
    reason: str

    def accepts(self, call_id: str) -> bool:
        if self.exact_length is not None and len(call_id) != self.exact_length:
            return False
        return len(call_id) <= self.max_length and self.pattern.fullmatch(call_id) is not None


# OpenAI FunctionObject.name: "a-z, A-Z, 0-9, underscores and dashes, maximum length of 64".
OPENAI_NAME = NameRule(re.compile(r"[a-zA-Z0-9_-]{1,64}"), 64, "OpenAI FunctionObject.name (API reference)")
# Anthropic: "tool_name: String should have at most 64 characters"; same character set as OpenAI.
ANTHROPIC_NAME = NameRule(re.compile(r"[a-zA-Z0-9_-]{1,64}"), 64, "Anthropic tools[].name validation error")
# Gemini API: "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or
# contain underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64" (the API's 400,
# google-gemini/gemini-cli#2966 and #7869, fixed there by PR #20987). The google-genai docstring of
# FunctionDeclaration.name says 128; the API rejects longer names, and the API wins.
GEMINI_NAME = NameRule(
    re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}"),
    64,
    "Gemini API 'Invalid function name ... maximum length of 64' (gemini-cli#2966, #7869, PR #20987)",
)
# Ollama validates nothing server-side, but the models were trained on OpenAI-shaped names.
OLLAMA_NAME = NameRule(re.compile(r"[a-zA-Z0-9_-]{1,64}"), 64, "Ollama: OpenAI-shaped names, safest for models")

# Anthropic: tool_use.id must match ^[a-zA-Z0-9_-]+$ ("tool_use.id: String should match pattern").
ANTHROPIC_ID = IdRule(re.compile(r"[a-zA-Z0-9_-]+"), 64, None, "Anthropic tool_use.id pattern error")
# OpenAI accepts any string up to 40 chars for tool_call_id ("string too long ... maximum length 40").
OPENAI_ID = IdRule(re.compile(r"[a-zA-Z0-9_-]+"), 40, None, "OpenAI messages[].tool_call_id max length 40")
# Mistral: "Tool call id has to be ... a-z, A-Z, 0-9, with a length of 9".
MISTRAL_ID = IdRule(re.compile(r"[a-zA-Z0-9]{9}"), 9, 9, "Mistral tool call id validation error")
# Gemini function-call ids are optional and opaque; keep them conservative.
GEMINI_ID = IdRule(re.compile(r"[a-zA-Z0-9_-]+"), 64, None, "Gemini functionCall.id (opaque, echoed back)")
# Ollama has no ids on the wire; results are matched by order and name. routekit still keeps ids.
OLLAMA_ID = IdRule(re.compile(r"[a-zA-Z0-9_-]+"), 64, None, "Ollama: no ids on the wire")


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything routekit needs to know about one provider or OpenAI-compatible preset."""

    name: str
    family: Family
    display_name: str
    default_base_url: str | None
    api_key_env: str | None  # the environment variable a key is read from by default
    requires_key: bool
    local: bool  # runs on the user's hardware: usage is metered but costs nothing
    tool_names: NameRule
    tool_call_ids: IdRule
    schema_target: SchemaTarget
    strict_tools: bool = False  # accepts OpenAI strict function schemas
    price_provider: str | None = None  # genai-prices provider id
    notes: tuple[str, ...] = field(default_factory=tuple)
    suggested_model: str | None = None  # used when neither the request nor the config names a model


def _openai_compatible(
    name: str,
    display: str,
    base_url: str | None,
    env: str | None,
    *,
    requires_key: bool = True,
    local: bool = False,
    ids: IdRule = OPENAI_ID,
    strict: bool = False,
    price: str | None = None,
    notes: tuple[str, ...] = (),
    model: str | None = None,
) -> Profile:
    return Profile(
        name=name,
        family="openai",
        display_name=display,
        default_base_url=base_url,
        api_key_env=env,
        requires_key=requires_key,
        local=local,
        tool_names=OPENAI_NAME,
        tool_call_ids=ids,
        schema_target="openai",
        strict_tools=strict,
        price_provider=price,
        notes=notes,
        suggested_model=model,
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="anthropic",
            family="anthropic",
            display_name="Anthropic",
            default_base_url="https://api.anthropic.com",
            api_key_env="ANTHROPIC_API_KEY",
            requires_key=True,
            local=False,
            tool_names=ANTHROPIC_NAME,
            tool_call_ids=ANTHROPIC_ID,
            schema_target="anthropic",
            price_provider="anthropic",
            suggested_model="claude-sonnet-4-6",
        ),
        _openai_compatible(
            "openai",
            "OpenAI",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            strict=True,
            price="openai",
            model="gpt-4.1-mini",
        ),
        _openai_compatible(
            "azure",
            "Azure OpenAI",
            None,
            "AZURE_OPENAI_API_KEY",
            strict=True,
            price="azure",
            notes=(
                "base_url is the resource endpoint; options.api_version selects the API version",
                "model is the deployment name",
            ),
        ),
        _openai_compatible(
            "openrouter",
            "OpenRouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            price="openrouter",
            model="openai/gpt-4.1-mini",
        ),
        _openai_compatible(
            "groq",
            "Groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            price="groq",
            model="llama-3.3-70b-versatile",
        ),
        _openai_compatible(
            "together",
            "Together AI",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            price="together",
            model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
        _openai_compatible(
            "deepseek",
            "DeepSeek",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            price="deepseek",
            model="deepseek-chat",
        ),
        _openai_compatible(
            "mistral",
            "Mistral",
            "https://api.mistral.ai/v1",
            "MISTRAL_API_KEY",
            ids=MISTRAL_ID,
            price="mistral",
            model="mistral-large-latest",
        ),
        _openai_compatible("vllm", "vLLM", "http://localhost:8000/v1", "VLLM_API_KEY", requires_key=False, local=True),
        _openai_compatible(
            "lmstudio", "LM Studio", "http://localhost:1234/v1", "LMSTUDIO_API_KEY", requires_key=False, local=True
        ),
        _openai_compatible(
            "llamacpp",
            "llama.cpp server",
            "http://localhost:8080/v1",
            "LLAMACPP_API_KEY",
            requires_key=False,
            local=True,
        ),
        _openai_compatible("openai-compatible", "Any OpenAI-compatible endpoint", None, None, requires_key=False),
        Profile(
            name="gemini",
            family="gemini",
            display_name="Google Gemini (Developer API)",
            default_base_url=None,  # the SDK's own default
            api_key_env="GEMINI_API_KEY",
            requires_key=True,
            local=False,
            tool_names=GEMINI_NAME,
            tool_call_ids=GEMINI_ID,
            schema_target="gemini",
            price_provider="google",
            suggested_model="gemini-2.5-flash",
        ),
        Profile(
            name="vertex",
            family="gemini",
            display_name="Google Gemini on Vertex AI",
            default_base_url=None,
            api_key_env="GOOGLE_API_KEY",  # express mode; otherwise application default credentials
            requires_key=False,
            local=False,
            tool_names=GEMINI_NAME,
            tool_call_ids=GEMINI_ID,
            schema_target="gemini",
            price_provider="google",
            notes=("options.project and options.location select the Vertex project and region",),
            suggested_model="gemini-2.5-flash",
        ),
        Profile(
            name="ollama",
            family="ollama",
            display_name="Ollama",
            default_base_url="http://localhost:11434",
            api_key_env="OLLAMA_API_KEY",  # only for hosted Ollama behind auth
            requires_key=False,
            local=True,
            tool_names=OLLAMA_NAME,
            tool_call_ids=OLLAMA_ID,
            schema_target="ollama",
            suggested_model="llama3.1",
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile for a provider or preset name; a ConfigError listing valid names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        from providers.errors import ConfigError

        raise ConfigError(f"unknown provider {name!r}. Valid providers: {', '.join(sorted(PROFILES))}") from None


# --------------------------------------------------------------------------- per-model profiles

ThinkingControl = Literal["none", "budget", "effort", "level", "toggle"]
OutputMode = Literal["json_schema", "json_object", "tool"]
PromptCaching = Literal["explicit", "automatic", "none"]

DEFAULT_FAMILY = "(provider default)"


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What one model of one provider accepts: the capabilities translation and the agent need.

    The data and its sources are in :mod:`providers._model_families` (a provider default, refined by model
    family); ``None`` is unknown, never "no". ``family`` names the rule that matched. ``tool_names`` is the
    provider's rule (the same for all its models).
    """

    provider: str
    model: str
    family: str
    tool_names: NameRule
    max_tokens_field: str
    strict_schemas: bool
    tools: bool | None = None
    parallel_tools: bool | None = None
    vision: bool | None = None
    output_mode: OutputMode | None = None
    thinking: ThinkingControl | None = None
    thinking_field: str | None = None
    prompt_caching: PromptCaching | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None
    nonstreaming_max_tokens: int | None = None
    tool_result_media: bool | None = None

    def capabilities(self) -> dict[str, Any]:
        """The profile as plain JSON values (the HTTP API and ``routekit providers --models --json``)."""
        return {
            "family": self.family,
            "tools": self.tools,
            "parallel_tools": self.parallel_tools,
            "vision": self.vision,
            "strict_schemas": self.strict_schemas,
            "output_mode": self.output_mode,
            "thinking": self.thinking,
            "thinking_field": self.thinking_field,
            "prompt_caching": self.prompt_caching,
            "max_output_tokens": self.max_output_tokens,
            "context_window": self.context_window,
            "max_tokens_field": self.max_tokens_field,
            "nonstreaming_max_tokens": self.nonstreaming_max_tokens,
            "tool_result_media": self.tool_result_media,
            "tool_name_max_length": self.tool_names.max_length,
            "tool_name_pattern": self.tool_names.pattern.pattern,
        }


def _bare_model_id(model: str) -> str:
    """The id the family patterns are written for: lower case, without a path (``models/``, ``publishers/...``)."""
    return model.rsplit("/", 1)[-1].lower()


@functools.lru_cache(maxsize=4096)  # per (provider, model); bounded: model names can come from any user
def profile_for(provider: str, model: str) -> ModelProfile:
    """The profile of ``model`` served by ``provider`` (a provider or preset name; ConfigError if unknown)."""
    from providers._model_families import FAMILIES

    preset = get_profile(provider)
    bare = _bare_model_id(model)
    for rule in FAMILIES.get(preset.name, ()):
        for pattern in rule.patterns:
            if fnmatch.fnmatchcase(bare, pattern):
                return _assemble(preset, model, pattern, rule.fields)
    return _assemble(preset, model, DEFAULT_FAMILY, {})


def model_families(provider: str) -> list[ModelProfile]:
    """The profiles routekit knows for ``provider``: one per family pattern (the pattern stands for the model),
    then the provider default (model ``*``). For listings; adapters ask :func:`profile_for`."""
    from providers._model_families import FAMILIES

    preset = get_profile(provider)
    known = [_assemble(preset, p, p, rule.fields) for rule in FAMILIES.get(preset.name, ()) for p in rule.patterns]
    return [*known, _assemble(preset, "*", DEFAULT_FAMILY, {})]


def _assemble(preset: Profile, model: str, family: str, overrides: dict[str, Any]) -> ModelProfile:
    from providers._model_families import DEFAULTS

    fields: dict[str, Any] = {"strict_schemas": preset.strict_tools, **DEFAULTS[preset.name], **overrides}
    return ModelProfile(provider=preset.name, model=model, family=family, tool_names=preset.tool_names, **fields)


def listed_model(info: ModelInfo) -> dict[str, Any]:
    """A model from a provider's live listing with its profile: the listing's fields, then the profile's. The
    limits are the listing's where it gives them (Anthropic, Gemini), else the profile's (None: unknown)."""
    profile = profile_for(info.provider, info.id)
    entry: dict[str, Any] = {**info.model_dump(), **profile.capabilities()}
    entry["context_window"] = info.context_window if info.context_window is not None else profile.context_window
    if info.max_output_tokens is not None:
        entry["max_output_tokens"] = info.max_output_tokens
    return entry
