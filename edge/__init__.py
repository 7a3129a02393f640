"""How a socket is served: the HTTP server, the upgrade lane, the WebSocket protocol, the
shared heartbeat and access logs (docs/architecture.md, "The edge")."""
