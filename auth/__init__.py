"""Authentication building blocks: tokens, password hashing and rate limits."""
