"""``Runner``: the openai-agents-style entry point (an agent plus a config, run into a session)."""

from __future__ import annotations

from typing import Any

from fastvoice.realtime.agent import Agent
from fastvoice.realtime.config import RunConfig
from fastvoice.realtime.session import Session, start_session

__all__ = ["Runner"]


class Runner:
    """Holds the starting agent and the run configuration; each :meth:`run` opens a new session."""

    def __init__(self, agent: Agent, *, config: RunConfig | None = None) -> None:
        if not isinstance(agent, Agent):
            raise TypeError(f"Runner needs a fastvoice.realtime.Agent, got {type(agent).__name__}")
        self.agent = agent
        self.config = config

    async def run(self, *, api_key: str | None = None, url: str | None = None, **kwargs: Any) -> Session:
        """Connect and return the :class:`Session` (keyword arguments as for :func:`start_session`)."""
        return await start_session(self.agent, self.config, api_key=api_key, url=url, **kwargs)
