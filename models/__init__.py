"""Database models and the helpers that run database work off the event loop."""
