"""Data: dataset records (`records`) and the prompts built from them (`prompts`)."""
