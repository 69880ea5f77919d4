"""Gemini 3 tool results: the images it takes (png, jpeg, webp) go into FunctionResponse.parts, everything else
(text, other media, even an image equal to one that was sent) stays in the response text, in order."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from providers.gemini import GeminiProvider
from providers.types import ImagePart, Message, ModelRequest, TextPart, ToolCallPart, ToolResultPart, ToolSpec
from tests.fakes.gemini import FakeGeminiServer
from tests.providers.conftest import config_for, start_fake

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

PNG = b"\x89PNG\r\n\x1a\none"
GIF = b"GIF89a-two"
WEATHER = ToolSpec(
    name="weather.get",
    description="Current weather for a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGeminiServer]:
    fake = start_fake("gemini")
    assert isinstance(fake, FakeGeminiServer)
    try:
        yield fake
    finally:
        fake.stop()


async def test_only_the_accepted_images_leave_the_text(server: FakeGeminiServer) -> None:
    call = ToolCallPart(id="c1", name="weather.get", arguments={"city": "Paris"})
    png = ImagePart(media_type="image/png", data=PNG)
    content = [TextPart(text="before"), png, ImagePart(media_type="image/gif", data=GIF), TextPart(text="after"), png]
    result = Message(role="tool", parts=[ToolResultPart(call_id="c1", name="weather.get", content=content)])
    provider = GeminiProvider(config_for("gemini", server, default_model="gemini-3-pro-preview"))
    try:
        history = [Message.user("chart?"), Message(role="assistant", parts=[call]), result]
        await provider.complete(ModelRequest(model="", messages=history, tools=[WEATHER]))
    finally:
        await provider.aclose()
    response = server.requests[-1].json["contents"][2]["parts"][0]["functionResponse"]
    text = response["response"]["result"]
    assert text.startswith("before\n[image image/gif")
    assert text.endswith("after")
    assert "image/png" not in text
    sent = [base64.urlsafe_b64decode(p["inline_data"]["data"]) for p in response["parts"]]
    assert sent == [PNG, PNG]
