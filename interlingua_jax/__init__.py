"""interlingua_jax: a frozen source LLM talks to a frozen target LLM through learned soft tokens."""

__version__ = "0.1.0"
