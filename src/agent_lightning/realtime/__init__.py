"""Live events: the event bus streamed to clients over a WebSocket (``/ws/events``)."""
