"""Function tools: pydantic schemas, docstrings, strict mode, invocation, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any, Literal

import docstring_parser
import hypothesis
import pydantic
import pytest
from fastvoice import realtime as rt
from fastvoice.realtime._docstrings import parse_docstring
from fastvoice.realtime.tools import ensure_strict_json_schema, normalize_tool
from hypothesis import strategies as st


def test_schema_matches_openai_agents_capture() -> None:
    @rt.function_tool
    def get_weather(city: str) -> str:
        """Get weather for a city."""
        return city

    assert get_weather.name == "get_weather"
    assert get_weather.description == "Get weather for a city."
    assert get_weather.to_session_tool() == {
        "type": "function",
        "name": "get_weather",
        "description": "Get weather for a city.",
        "parameters": {
            "properties": {"city": {"title": "City", "type": "string"}},
            "required": ["city"],
            "title": "get_weather_args",
            "type": "object",
            "additionalProperties": False,
        },
    }
    assert get_weather("Paris") == "Paris"  # still callable as the plain function


GOOGLE = """Book a table.

    Picks the best slot.

    Args:
        restaurant: Name of the
            restaurant.
        people (int): How many guests.
        when: ISO date.

    Returns:
        A confirmation code.
    """

SPHINX = """Book a table.

    :param restaurant: Name of the restaurant.
    :param int people: How many guests.
    :param when: ISO date.
    :returns: A confirmation code.
    """

NUMPY = """Book a table.

    Parameters
    ----------
    restaurant : str
        Name of the restaurant.
    people : int
        How many guests.
    when
        ISO date.

    Returns
    -------
    str
    """


@pytest.mark.parametrize("doc", [GOOGLE, SPHINX, NUMPY], ids=["google", "sphinx", "numpy"])
def test_docstring_params_agree_with_docstring_parser(doc: str) -> None:
    ours = parse_docstring(doc)
    ref = docstring_parser.parse(doc)
    # docstring_parser keeps line breaks inside a description; we join continuation lines with spaces.
    assert ours.params == {p.arg_name: " ".join((p.description or "").split()) for p in ref.params}
    assert ours.description is not None and ours.description.startswith(ref.short_description or "")
    assert ours.params["restaurant"] == "Name of the restaurant."


def test_docstring_edge_cases() -> None:
    assert parse_docstring(None).description is None
    assert parse_docstring("").params == {}
    assert parse_docstring("Just a summary.").description == "Just a summary."
    d = parse_docstring("Summary.\n\nMore text\nacross lines.\n")
    assert d.description == "Summary.\n\nMore text across lines."


def test_descriptions_types_defaults_and_nested_models_are_strict() -> None:
    class Address(pydantic.BaseModel):
        street: str
        zip_code: str | None = None

    @rt.function_tool(name_override="book", description_override="Book it.")
    async def book_table(
        restaurant: str,
        people: int,
        address: Address,
        mode: Literal["fast", "slow"] = "fast",
        note: str | None = None,
    ) -> dict[str, Any]:
        """Ignored summary.

        Args:
            restaurant: Name of the restaurant.
            people: How many guests.
        """
        return {
            "restaurant": restaurant,
            "people": people,
            "zip": address.zip_code,
            "mode": mode,
            "note": note,
        }

    schema = book_table.params_json_schema
    assert book_table.name == "book" and book_table.description == "Book it."
    assert schema["required"] == ["restaurant", "people", "address", "mode", "note"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["restaurant"]["description"] == "Name of the restaurant."
    assert schema["properties"]["people"] == {
        "type": "integer",
        "title": "People",
        "description": "How many guests.",
    }
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow"]
    nested = schema["$defs"]["Address"]
    assert nested["additionalProperties"] is False and nested["required"] == ["street", "zip_code"]
    # Strictness was added without changing pydantic's own description of the fields.
    plain = pydantic.create_model("x", a=(int, ...)).model_json_schema()
    assert ensure_strict_json_schema(plain) == {**plain, "additionalProperties": False}
    out = asyncio.run(book_table.invoke('{"restaurant": "Chez", "people": 2, "address": {"street": "Main"}}'))
    assert json.loads(out) == {"restaurant": "Chez", "people": 2, "zip": None, "mode": "fast", "note": None}


def test_open_dicts_are_rejected_in_strict_mode_only() -> None:
    def tags(values: dict[str, int]) -> int:
        return sum(values.values())

    with pytest.raises(ValueError, match="open object"):
        rt.function_tool(tags)
    loose = rt.function_tool(strict_json_schema=False)(tags)
    assert loose.params_json_schema["properties"]["values"]["additionalProperties"] == {"type": "integer"}
    assert asyncio.run(loose.invoke('{"values": {"a": 1, "b": 2}}')) == "3"


def test_sync_tools_run_off_the_event_loop_thread() -> None:
    seen: list[int] = []

    @rt.function_tool
    def where() -> str:
        """Report the thread."""
        seen.append(threading.get_ident())
        return "ok"

    async def main() -> str:
        seen.append(threading.get_ident())
        return await where.invoke("")

    assert asyncio.run(main()) == "ok"
    assert seen[0] != seen[1]


def test_results_are_serialized_to_json() -> None:
    @dataclasses.dataclass
    class Forecast:
        city: str
        temp_c: float

    @rt.function_tool
    def forecast(city: str) -> Forecast:
        return Forecast(city, 21.5)

    @rt.function_tool
    def nothing() -> None:
        return None

    @rt.function_tool
    async def text() -> str:
        return "plain text, not JSON"

    assert json.loads(asyncio.run(forecast.invoke('{"city": "Oslo"}'))) == {"city": "Oslo", "temp_c": 21.5}
    assert asyncio.run(nothing.invoke("{}")) == "null"
    assert asyncio.run(text.invoke("{}")) == "plain text, not JSON"


def test_bad_arguments_raise_typed_errors_and_safe_invoke_reports_them() -> None:
    @rt.function_tool
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(rt.ToolArgumentsError, match="invalid arguments for tool add"):
        asyncio.run(add.invoke('{"a": 1}'))
    with pytest.raises(rt.ToolArgumentsError):
        asyncio.run(add.invoke("{not json"))
    with pytest.raises(rt.ToolArgumentsError):
        asyncio.run(
            add.invoke('{"a": 1, "b": 2, "c": 3}')
        )  # strict: unknown fields would be ignored silently
    assert asyncio.run(add.invoke('{"a": 1, "b": 2}')) == "3"
    res = asyncio.run(add.invoke_safe('{"a": "x", "b": 2}'))
    assert not res.ok and isinstance(res.error, rt.ToolArgumentsError)
    assert res.output.startswith(
        "An error occurred while running the tool. Error: invalid arguments for tool add"
    )


def test_tool_exceptions_become_error_text_or_custom_formatter() -> None:
    @rt.function_tool
    async def boom() -> str:
        raise RuntimeError("kaput")

    res = asyncio.run(boom.invoke_safe("{}"))
    assert res.output == "An error occurred while running the tool. Error: kaput"
    assert isinstance(res.error, RuntimeError)
    assert rt.default_tool_error_text(KeyError("k")) == "An error occurred while running the tool. Error: 'k'"

    custom = rt.function_tool(failure_error_function=lambda e: f"sorry: {type(e).__name__}")(boom.__wrapped__)
    assert asyncio.run(custom.invoke_safe("{}")).output == "sorry: RuntimeError"
    raising = rt.function_tool(failure_error_function=None)(boom.__wrapped__)
    with pytest.raises(RuntimeError, match="kaput"):
        asyncio.run(raising.invoke_safe("{}"))


def test_tool_context_is_injected_and_hidden_from_schema() -> None:
    @rt.function_tool(needs_approval=True)
    def refund(ctx: rt.ToolContext, amount: float) -> str:
        """Refund money.

        Args:
            amount: In euros.
        """
        return f"{ctx.tool_name}:{ctx.call_id}:{amount}"

    assert refund.needs_approval is True
    assert list(refund.params_json_schema["properties"]) == ["amount"]
    ctx = rt.ToolContext(tool_name="refund", call_id="call_7", arguments='{"amount": 3.5}')
    assert asyncio.run(refund.invoke('{"amount": 3.5}', ctx)) == "refund:call_7:3.5"


def test_invalid_tool_definitions() -> None:
    def variadic(*values: int) -> int:
        return sum(values)

    with pytest.raises(TypeError, match=r"\*args"):
        rt.function_tool(variadic)
    with pytest.raises(ValueError, match="tool name"):
        rt.function_tool(name_override="has space")(lambda: None)
    with pytest.raises(ValueError, match="unknown keys"):
        normalize_tool({"name": "x", "parameters": {}, "strict": True})
    with pytest.raises(ValueError, match="function_tool"):
        normalize_tool(print)
    with pytest.raises(ValueError, match="type 'object'"):
        normalize_tool({"name": "x", "parameters": {"type": "string"}})


def test_dict_tools_keep_their_schema() -> None:
    params = {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "City name"}},
        "required": ["location"],
    }
    tool = normalize_tool({"name": "get_weather", "description": "Get current weather", "parameters": params})
    assert isinstance(tool, rt.ClientTool)
    wire = tool.to_session_tool()
    assert wire == {
        "type": "function",
        "name": "get_weather",
        "description": "Get current weather",
        "parameters": params,
    }
    wire["parameters"]["properties"].clear()  # a copy: mutating it does not change the tool
    assert tool.parameters["properties"]["location"]["type"] == "string"


@hypothesis.given(st.text(max_size=300))
def test_docstring_parser_never_raises(doc: str) -> None:
    parsed = parse_docstring(doc)
    assert parsed.description is None or isinstance(parsed.description, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.params.items())


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(st.integers(-(2**40), 2**40), st.integers(-(2**40), 2**40))
def test_invoke_round_trips_integers(a: int, b: int) -> None:
    @rt.function_tool
    def add(a: int, b: int) -> int:
        return a + b

    assert asyncio.run(add.invoke(json.dumps({"a": a, "b": b}))) == str(a + b)
