"""Native WebSocket client: tokio-tungstenite + rustls in Rust, bridged to asyncio.

```python
from fastvoice import transport

async with transport.connect(url, headers={"Authorization": f"Bearer {key}"}) as conn:
    await conn.send_text('{"type": "session.update", ...}')
    async for msg in conn:
        ...
```

Framing, masking, TLS, keepalive and the audio fast paths run on one background tokio runtime
shared by all connections; Python receives whole batches with at most one loop wake-up per burst.
"""

from fastvoice.transport._connection import Connection, Message, connect
from fastvoice.transport._errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageTooBig,
    ProtocolError,
    TransportError,
)

__all__ = [
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Message",
    "MessageTooBig",
    "ProtocolError",
    "TransportError",
    "connect",
]
