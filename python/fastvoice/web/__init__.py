"""Talk to an agent from a browser: ``fastvoice web`` and :class:`WebServer`.

One page, served by aiohttp with no build step and no CDN: a talk button, a live transcript of both
sides, tool calls and handoffs, the agent's state and a level meter. The microphone goes up as 20 ms
binary PCM16 frames from an AudioWorklet and the reply comes back the same way, both resampled natively
on the server; the call runs on the bridge core of :mod:`fastvoice.telephony` (barge-in truncates at
what the page played). Needs aiohttp (the ``phone`` extra).
"""

from fastvoice.web.server import BrowserDialect, WebServer

__all__ = ["BrowserDialect", "WebServer"]
