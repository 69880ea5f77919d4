"""Per-model capabilities as data: what each provider's models accept, by model family, with sources.

:func:`providers.profiles.profile_for` reads these tables. For a provider (or OpenAI-compatible preset) it
starts from :data:`DEFAULTS` (what routekit assumes of a model it does not know: the adapters' behaviour for
such a model) and applies the first rule of :data:`FAMILIES` whose pattern matches the model (``fnmatch``,
case-insensitive, on the bare id: ``models/`` and ``publishers/.../models/`` prefixes removed). A field a rule
does not set keeps the provider default. ``None`` means unknown, never "no".

Fields (the adapters read the ones marked *wire*):

* ``tools``, ``parallel_tools``, ``vision``: whether the model takes function tools, several tool calls in one
  turn, image input.
* ``output_mode``: how the model is held to a JSON schema for a structured answer (``json_schema``: a native
  response schema; ``tool``: a forced tool call; ``json_object``: JSON mode without a schema).
* ``thinking``: the model's reasoning control (``budget`` tokens, ``effort`` level, Gemini 3 ``level``,
  Ollama ``toggle``; ``none``: the model has none); ``thinking_field`` (*wire*): the request field that
  carries it; with ``None`` the adapter sends no reasoning control even when the request asks for one.
* ``prompt_caching``: ``explicit`` (breakpoints in the request), ``automatic`` (the provider caches
  prefixes itself) or ``none``.
* ``max_output_tokens``, ``context_window``: the model's limits in tokens.
* ``max_tokens_field`` (*wire*): the request field for the output limit.
* ``nonstreaming_max_tokens`` (*wire*): above this ``max_tokens`` the API refuses a non-streaming request.
* ``tool_result_media`` (*wire*): images can travel inside a tool result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- provider defaults

_ANTHROPIC: dict[str, Any] = {
    "tools": True,  # docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview
    "parallel_tools": True,  # tool-use docs: "disable_parallel_tool_use" turns the default off
    "vision": True,  # docs.anthropic.com/en/docs/build-with-claude/vision (every current Claude model)
    "strict_schemas": False,  # routekit compiles strict schemas for the openai target only (providers/schema.py)
    "output_mode": "tool",  # tool-use docs, "JSON mode": a forced tool whose input_schema is the answer's schema
    "thinking": "budget",  # extended thinking: thinking={"type": "enabled", "budget_tokens": N}
    "thinking_field": "thinking",  # docs.anthropic.com/en/docs/build-with-claude/extended-thinking
    "prompt_caching": "explicit",  # cache_control breakpoints: docs.anthropic.com/.../prompt-caching
    "max_tokens_field": "max_tokens",  # required on every Messages request (API reference)
    "tool_result_media": True,  # tool_result.content takes image blocks (tool-use docs)
}
_OPENAI: dict[str, Any] = {
    "tools": True,  # platform.openai.com/docs/guides/function-calling
    "parallel_tools": True,  # same guide, "parallel function calling" (parallel_tool_calls, default on)
    "strict_schemas": True,  # same guide, "strict mode" (Structured Outputs for function schemas)
    "output_mode": "json_schema",  # response_format {"type": "json_schema"} (openai SDK completion_create_params)
    "thinking": "effort",  # reasoning_effort (openai SDK completion_create_params.reasoning_effort)
    "thinking_field": "reasoning_effort",
    "prompt_caching": "automatic",  # platform.openai.com/docs/guides/prompt-caching (prompts of 1024+ tokens)
    # "Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead" (reasoning models); the
    # openai SDK marks max_tokens deprecated in favour of max_completion_tokens.
    "max_tokens_field": "max_completion_tokens",
    # tool messages carry text only (openai SDK ChatCompletionToolMessageParam.content); routekit sends a tool's
    # images in a user message after the tool messages (providers/openai.py)
    "tool_result_media": False,
}
# OpenAI-compatible servers: what they accept depends on the server and the model it serves.
_COMPATIBLE: dict[str, Any] = {
    "strict_schemas": False,  # providers/profiles.py: only OpenAI and Azure accept strict function schemas
    # Compatible servers (vLLM, llama.cpp, Groq, Together, ...) only reliably understand max_tokens, and
    # reject or ignore request fields they do not know (reasoning_effort among them).
    "max_tokens_field": "max_tokens",
    "tool_result_media": False,  # Chat Completions tool messages carry text only (as for OpenAI above)
}
_GEMINI: dict[str, Any] = {
    "tools": True,  # ai.google.dev/gemini-api/docs/function-calling
    "parallel_tools": True,  # same page, "parallel function calling"
    "vision": True,  # ai.google.dev/gemini-api/docs/image-understanding (every Gemini model)
    "strict_schemas": False,  # routekit: strict schemas are an openai-target feature (providers/schema.py)
    "output_mode": "json_schema",  # responseMimeType + responseJsonSchema: ai.google.dev/.../structured-output
    # ThinkingConfig: thinking_budget (2.5) or thinking_level (3), google-genai types.ThinkingConfig
    "thinking": "budget",
    "thinking_field": "thinking_config",
    "prompt_caching": "automatic",  # implicit caching: ai.google.dev/gemini-api/docs/caching (2.5 and later)
    "max_tokens_field": "max_output_tokens",  # google-genai types.GenerateContentConfig.max_output_tokens
    "tool_result_media": False,  # FunctionResponse.parts is a Gemini 3 feature (below)
}
_OLLAMA: dict[str, Any] = {
    "strict_schemas": False,  # Ollama has no strict function schemas (providers/schema.py: openai target only)
    "output_mode": "json_schema",  # /api/chat "format": a JSON schema (ollama.com/blog/structured-outputs)
    "thinking": "toggle",  # /api/chat "think": true/false, or a level for gpt-oss (ollama.com/blog/thinking)
    "thinking_field": "think",
    "prompt_caching": "none",  # the server reuses its KV cache, but reports and bills nothing for it
    "max_tokens_field": "num_predict",  # /api/chat options.num_predict (ollama docs/modelfile.md)
    "tool_result_media": False,  # role "tool" messages carry text (ollama docs/api.md, chat request)
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "anthropic": _ANTHROPIC,
    "openai": _OPENAI,
    "azure": _OPENAI,  # Azure OpenAI serves OpenAI's models with OpenAI's request fields
    # OpenRouter takes reasoning as `reasoning: {effort | max_tokens}` (openrouter.ai/docs, reasoning tokens)
    "openrouter": {**_COMPATIBLE, "thinking": "effort", "thinking_field": "reasoning"},
    "groq": _COMPATIBLE,
    "together": _COMPATIBLE,
    "deepseek": _COMPATIBLE,
    "mistral": _COMPATIBLE,
    "vllm": _COMPATIBLE,
    "lmstudio": _COMPATIBLE,
    "llamacpp": _COMPATIBLE,
    "openai-compatible": _COMPATIBLE,
    "gemini": _GEMINI,
    "vertex": _GEMINI,
    "ollama": _OLLAMA,
}


# --------------------------------------------------------------------------- model families


@dataclass(frozen=True, slots=True)
class FamilyRule:
    """Model ids matching any of ``patterns`` (fnmatch, lower case) get ``fields`` over the provider default."""

    patterns: tuple[str, ...]
    fields: dict[str, Any]


def _rule(*patterns: str, **fields: Any) -> FamilyRule:
    return FamilyRule(patterns, fields)


_NO_THINKING: dict[str, Any] = {"thinking": "none", "thinking_field": None}

# Anthropic: docs.anthropic.com/en/docs/about-claude/models/overview (context windows and max output per model).
_CLAUDE = (
    # The non-streaming cap: the anthropic SDK's own table (anthropic/_constants.py MODEL_NONSTREAMING_TOKENS,
    # private to the SDK, so the facts are kept here); above it the SDK refuses a non-streaming request.
    _rule(
        "claude-opus-4-0",
        "claude-opus-4-20250514",
        "claude-4-opus-20250514",
        "claude-opus-4-1-20250805",
        max_output_tokens=32_000,
        context_window=200_000,
        nonstreaming_max_tokens=8_192,
    ),
    _rule(
        "claude-opus-4-0*", "claude-opus-4-1*", "claude-opus-4-2025*", max_output_tokens=32_000, context_window=200_000
    ),
    # Sonnet 4 / 4.5, Haiku 4.5, Opus 4.5: 64k output, 200k context (1M behind a beta header for Sonnet).
    _rule("claude-sonnet-4*", "claude-haiku-4*", "claude-opus-4-5*", max_output_tokens=64_000, context_window=200_000),
    _rule("claude-3-7-sonnet*", max_output_tokens=64_000, context_window=200_000),  # the first with thinking
    # Before 3.7 there is no extended thinking ("thinking is not supported for this model").
    _rule("claude-3-5-sonnet*", **_NO_THINKING, max_output_tokens=8_192, context_window=200_000),
    _rule("claude-3-5-haiku*", **_NO_THINKING, vision=None, max_output_tokens=8_192, context_window=200_000),
    _rule("claude-3-haiku*", "claude-3-opus*", **_NO_THINKING, max_output_tokens=4_096, context_window=200_000),
)

# OpenAI: platform.openai.com/docs/models (limits per model) and docs/guides/reasoning (reasoning models).
_GPT = (
    # o1-mini / o1-preview: no function calling, no images, no reasoning_effort ("Unsupported parameter").
    _rule(
        "o1-mini*", "o1-preview*", tools=False, vision=False, **_NO_THINKING, output_mode=None, context_window=128_000
    ),
    _rule("o3-mini*", vision=False, context_window=200_000, max_output_tokens=100_000),  # text-only reasoning model
    _rule("o1*", "o3*", "o4*", vision=True, context_window=200_000, max_output_tokens=100_000),
    # The chat snapshots of GPT-5 are not reasoning models: no reasoning_effort.
    _rule("gpt-5*-chat*", **_NO_THINKING, vision=True),
    _rule("gpt-5*", vision=True, context_window=400_000, max_output_tokens=128_000),
    # GPT-4.1 and GPT-4o are not reasoning models: reasoning_effort is refused ("Unrecognized request argument").
    _rule("gpt-4.1*", **_NO_THINKING, vision=True, context_window=1_047_576, max_output_tokens=32_768),
    _rule("gpt-4o*", "chatgpt-4o*", **_NO_THINKING, vision=True, context_window=128_000, max_output_tokens=16_384),
)

# Gemini: ai.google.dev/gemini-api/docs/models (limits) and docs/thinking (controls per generation).
_GEMINI_MODELS = (
    # Gemini 3: thinking_level; FunctionResponse.parts carries images (image/png, image/jpeg, image/webp) in
    # tool results (ai.google.dev/gemini-api/docs/function-calling, multimodal function responses).
    _rule("gemini-3*", thinking="level", tool_result_media=True, context_window=1_048_576, max_output_tokens=65_536),
    _rule("gemini-2.5*", thinking="budget", context_window=1_048_576, max_output_tokens=65_536),
    _rule("gemini-2.0*", **_NO_THINKING, context_window=1_048_576, max_output_tokens=8_192),  # no thinking config
    _rule("gemini-1.5*", **_NO_THINKING, max_output_tokens=8_192),
)

# Ollama: the library page of each model (ollama.com/library/<name>) says "tools", "vision", "thinking".
_OLLAMA_MODELS = (
    _rule("llava*", "llama3.2-vision*", "gemma3*", "qwen2.5vl*", vision=True, **_NO_THINKING),
    _rule("gpt-oss*", tools=True, thinking="level"),  # think takes "low" | "medium" | "high" (ollama blog/thinking)
    _rule("qwen3*", "deepseek-r1*", "magistral*", tools=True, thinking="toggle"),
    _rule("llama3.1*", "llama3.2*", "llama3.3*", "qwen2.5*", "mistral-nemo*", tools=True, **_NO_THINKING),
)

FAMILIES: dict[str, tuple[FamilyRule, ...]] = {
    "anthropic": _CLAUDE,
    "openai": _GPT,
    "azure": _GPT,  # deployments are usually named after the model they serve; others get the default
    "gemini": _GEMINI_MODELS,
    "vertex": _GEMINI_MODELS,
    "ollama": _OLLAMA_MODELS,
}
