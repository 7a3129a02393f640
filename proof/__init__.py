"""Outside proof of the server: the RFC 6455 conformance run against its real WebSocket stack."""
