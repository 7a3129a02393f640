"""Outside proof of the server: runs that check it from outside, as an operator would."""
