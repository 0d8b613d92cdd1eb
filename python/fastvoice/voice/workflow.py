"""What the pipeline runs between STT and TTS: the user's logic, turning a transcript into text.

A workflow is any object with `greeting()` and `run(text)`; state (history, counters) lives in
the object. `run` may return a string, a list (or any iterable) of strings, each a complete
utterance, an async iterator of text pieces (streamed LLM output, joined as they come), or an
awaitable of any of these; the pipeline splits the text into sentences as it arrives.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

WorkflowOutput = str | Iterable[str] | AsyncIterator[str]


@runtime_checkable
class Workflow(Protocol):
    """The protocol a pipeline's workflow follows."""

    def greeting(self) -> str | None:
        """Text spoken before the first user turn, or None for no greeting turn."""
        ...

    def run(self, text: str) -> WorkflowOutput | Awaitable[WorkflowOutput]:
        """The reply to one user turn's transcript."""
        ...


class SimpleWorkflow:
    """A workflow from a function: `SimpleWorkflow(lambda text: [f"You said {text}"])`.

    `fn` may be sync or async and return anything `Workflow.run` may return.
    """

    def __init__(
        self,
        fn: Callable[[str], WorkflowOutput | Awaitable[WorkflowOutput]],
        greeting: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"SimpleWorkflow needs a callable, got {type(fn).__name__}")
        self._fn = fn
        self._greeting = greeting

    def greeting(self) -> str | None:
        return self._greeting

    def run(self, text: str) -> WorkflowOutput | Awaitable[WorkflowOutput]:
        return self._fn(text)


def workflow_greeting(workflow: Any) -> str | None:
    """The workflow's greeting; a workflow without a `greeting` method has none."""
    fn = getattr(workflow, "greeting", None)
    if fn is None:
        return None
    value = fn() if callable(fn) else fn
    if value is not None and not isinstance(value, str):
        raise TypeError(f"workflow greeting must be a str or None, got {type(value).__name__}")
    return value or None


async def text_pieces(output: Any) -> AsyncIterator[str]:
    """Normalise whatever `run` returned into an async stream of text pieces.

    Raises `TypeError` naming the offending type, so a workflow bug reads as one.
    """
    if inspect.isawaitable(output):
        output = await output
    if isinstance(output, str):
        yield output
    elif hasattr(output, "__aiter__"):
        try:
            async for piece in output:
                yield _check_piece(piece)
        finally:  # closing this generator early must close the workflow's own (its HTTP stream...)
            await aclose_iterator(output)
    elif isinstance(output, Iterable) and not isinstance(output, bytes | bytearray):
        # Items of a list are whole utterances: a line break ends each one's last sentence
        # (streamed pieces of an async iterator, by contrast, are joined as they come).
        for piece in output:
            yield _check_piece(piece) + "\n"
    elif output is None:
        return
    else:
        raise TypeError(
            "workflow run() must return a str, a list of str or an async iterator of str, "
            f"got {type(output).__name__}"
        )


async def aclose_iterator(iterator: object) -> None:
    """`await iterator.aclose()` if it has one: leaving an `async for` early (or being cancelled
    in its body) does not close the iterator, which would keep its resources until GC."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _check_piece(piece: Any) -> str:
    if not isinstance(piece, str):
        raise TypeError(f"workflow produced a {type(piece).__name__} where text (str) was expected")
    return piece
