"""The offline toy world: a synthetic GSM8K-format task, its two tokenizers and two tiny pretrained LMs."""
