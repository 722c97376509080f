"""The LLM judge: an additive 0-5 educational-value prompt, strict score parsing, annotation runs."""
