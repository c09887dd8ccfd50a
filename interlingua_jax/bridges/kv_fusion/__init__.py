"""Cache-to-Cache style KV fusion: a frozen source LM's prefill cache rewrites a frozen target LM's, layer by layer."""
