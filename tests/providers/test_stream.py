"""The stream assembler against the fragment shapes real providers and compatible servers send."""

from __future__ import annotations

import json

import pytest

from providers.profiles import PROFILES
from providers.stream import ToolCallAssembler, new_call_id, parse_arguments
from providers.types import ProviderData


def test_openai_fragments_index_then_arguments_pieces() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="call_a", name="weather", arguments="")
    for piece in ['{"ci', 'ty": "Pa', 'ris", "days"', ": 3}"]:
        asm.add(index=0, arguments=piece)
    [call] = asm.complete()
    assert (call.id, call.name, call.arguments, call.raw_arguments) == (
        "call_a",
        "weather",
        {"city": "Paris", "days": 3},
        None,
    )


def test_all_calls_at_index_zero_with_distinct_ids_stay_separate() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="one", arguments='{"x": 1}')
    asm.add(index=0, id="b", name="two", arguments='{"y": 2}')
    asm.add(index=0, id="c", name="three", arguments={"z": 3})
    calls = asm.complete()
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("a", "one", {"x": 1}),
        ("b", "two", {"y": 2}),
        ("c", "three", {"z": 3}),
    ]


def test_whole_calls_without_id_or_index_are_separate_calls() -> None:
    """Ollama's native API sends each call whole, with neither an id nor an index."""
    asm = ToolCallAssembler()
    asm.add(name="weather", arguments={"city": "Paris"})
    asm.add(name="weather", arguments={"city": "Oslo"})
    asm.add(name="clock", arguments={})
    calls = asm.complete()
    assert [(c.name, c.arguments) for c in calls] == [
        ("weather", {"city": "Paris"}),
        ("weather", {"city": "Oslo"}),
        ("clock", {}),
    ]
    assert len({c.id for c in calls}) == 3


def test_whole_calls_at_index_zero_without_ids_are_separate_calls() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, name="a", arguments='{"k": 1}')
    asm.add(index=0, name="b", arguments='{"k": 2}')
    assert [(c.name, c.arguments) for c in asm.complete()] == [("a", {"k": 1}), ("b", {"k": 2})]


def test_name_repeated_on_every_fragment_of_one_call_stays_one_call() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f", arguments='{"q": ')
    asm.add(index=0, name="f", arguments='"x"')
    asm.add(index=0, name="f", arguments="}")
    asm.add(index=0, name="f", arguments="")  # a trailing name-only fragment after the call finished
    [call] = asm.complete()
    assert call.arguments == {"q": "x"}


def test_whole_call_in_one_chunk_with_string_arguments() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="x1", name="search", arguments='{"query": "mcp"}')
    [call] = asm.complete()
    assert call.arguments == {"query": "mcp"}
    assert call.arguments_valid


def test_deltas_without_index_continue_the_latest_call() -> None:
    asm = ToolCallAssembler()
    asm.add(id="a", name="first", arguments='{"n": 1}')
    asm.add(id="b", name="second", arguments='{"s": "he')
    asm.add(arguments='llo"}')
    calls = asm.complete()
    assert [(c.id, c.arguments) for c in calls] == [("a", {"n": 1}), ("b", {"s": "hello"})]


def test_fragment_without_index_but_with_known_id_goes_to_that_call() -> None:
    asm = ToolCallAssembler()
    asm.add(id="a", name="first", arguments='{"n": ')
    asm.add(id="b", name="second", arguments='{"m": 2}')
    asm.add(id="a", arguments="1}")
    assert [c.arguments for c in asm.complete()] == [{"n": 1}, {"m": 2}]


def test_fragments_on_an_index_whose_id_came_earlier() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f", arguments="")
    asm.add(index=1, id="b", name="g", arguments="")
    asm.add(index=1, arguments='{"b": true}')
    asm.add(index=0, arguments='{"a": [1, 2]}')
    calls = asm.complete()
    assert [(c.id, c.arguments) for c in calls] == [("a", {"a": [1, 2]}), ("b", {"b": True})]


def test_several_calls_in_one_chunk_keep_order_of_first_appearance() -> None:
    asm = ToolCallAssembler()
    positions = [
        asm.add(index=2, id="c", name="third", arguments="{}"),
        asm.add(index=0, id="a", name="first", arguments="{}"),
        asm.add(index=1, id="b", name="second", arguments="{}"),
    ]
    assert positions == [0, 1, 2]
    assert [c.id for c in asm.complete()] == ["c", "a", "b"]
    assert len(asm) == 3


def test_late_id_attaches_to_the_call_that_opened_the_index() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, name="f", arguments='{"a"')
    asm.add(index=0, id="late_id", arguments=": 1}")
    [call] = asm.complete()
    assert (call.id, call.name, call.arguments) == ("late_id", "f", {"a": 1})


def test_missing_id_gets_one_valid_for_every_provider() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, name="f", arguments="{}")
    [call] = asm.complete()
    assert call.id.startswith("call_")
    for profile in PROFILES.values():
        if profile.tool_call_ids.exact_length is None:
            assert profile.tool_call_ids.accepts(call.id), profile.name
    assert new_call_id() != new_call_id()


@pytest.mark.parametrize("text", ['{"a": 1', "not json", "[1, 2]", '"just a string"', "42"])
def test_invalid_or_non_object_arguments_are_kept_raw(text: str) -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f", arguments=text)
    [call] = asm.complete()
    assert call.arguments == {}
    assert call.raw_arguments == text
    assert not call.arguments_valid


@pytest.mark.parametrize("pieces", [[], [""], ["  ", "\n"]])
def test_empty_arguments_become_an_empty_object(pieces: list[str]) -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f")
    for piece in pieces:
        asm.add(index=0, arguments=piece)
    [call] = asm.complete()
    assert call.arguments == {}
    assert call.raw_arguments is None


def test_parsed_object_arguments_replace_text_fragments() -> None:
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f", arguments='{"partial": ')
    asm.add(index=0, arguments={"whole": True})
    [call] = asm.complete()
    assert call.arguments == {"whole": True}


def test_provider_data_and_name_are_kept() -> None:
    """Gemini sends the thought signature with the call; the first name wins."""
    data = ProviderData(provider="gemini", data={"thought_signature": "c2ln"})
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f", arguments="{}", provider_data=data)
    asm.add(index=0, id="a", name="other", arguments="")
    [call] = asm.complete()
    assert call.name == "f"
    assert call.provider_data == data


def test_split_inside_a_json_string_with_unicode_and_escapes() -> None:
    value = {"text": 'line1\nline2 "quoted" ünïcödé ✓', "n": [1, {"deep": None}]}
    encoded = json.dumps(value)
    asm = ToolCallAssembler()
    asm.add(index=0, id="a", name="f")
    for start in range(0, len(encoded), 3):
        asm.add(index=0, arguments=encoded[start : start + 3])
    assert asm.complete()[0].arguments == value


def test_parse_arguments() -> None:
    assert parse_arguments(None) == ({}, None)
    assert parse_arguments("") == ({}, None)
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments("[]") == ({}, "[]")
    assert parse_arguments("{oops") == ({}, "{oops")


def test_empty_assembler_completes_nothing() -> None:
    assert ToolCallAssembler().complete() == []
