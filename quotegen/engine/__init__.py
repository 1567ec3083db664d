"""Generating: the engine and its decode loop (``generation``), a row and its finishing rules
(``rows``), choosing tokens (``sampling``), token scores and their shapes (``scoring``), the
shared KV cache and the decode batch's state (``kvcache``), whole-word prompts
(``wholewords``), and the one continuous-batching scheduler (``scheduler``)."""
