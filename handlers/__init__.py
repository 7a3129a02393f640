"""HTTP and WebSocket handlers: thin adapters from requests to services and the hub."""
