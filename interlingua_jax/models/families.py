"""The decoder families this port reads, each described by what it adds to the shared Llama-style block.

Every family has the Llama tensors: token embeddings, pre-attention and pre-MLP RMSNorms, q/k/v/o
projections with rotary positions, a SwiGLU MLP, a final RMSNorm and an optional untied output head. A
family only says which extra tensors exist and which config.json values the port relies on; `param_layout`,
the decoder and the checkpoint name mapping read these flags, so adding a family is one entry in FAMILIES.

Tokenizer facts live with the tokenizer, not here: Llama/Mistral tokenizers add a BOS, Qwen's add none
(its config.json still names one) and end a chat turn with <|im_end|>; Qwen2.5's config vocab_size is
padded beyond the tokenizer's size, so logits have columns no token maps to.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Family:
  """What one family adds to the shared block; every flag is read in one place each (layout, decoder, names)."""
  architecture: str  # the transformers class, written to config.json by `save_pretrained`
  qkv_bias: bool = False  # q_proj/k_proj/v_proj carry biases (o_proj does not)
  qk_norm: bool = False  # per-head RMSNorm over head_dim on q and k, before RoPE
  sliding_window: bool = False  # config.json's `sliding_window` applies to every layer
  # config.json flags the port assumes (missing or null reads as false); the other value is refused.
  assumes: tuple[tuple[str, bool], ...] = (("attention_bias", False), ("mlp_bias", False))


_NO_WINDOW = (("use_sliding_window", False),)  # Qwen releases ship it false; true windows only some layers

FAMILIES = {
    "llama": Family("LlamaForCausalLM"),
    "mistral": Family("MistralForCausalLM", sliding_window=True),
    "qwen2": Family("Qwen2ForCausalLM", qkv_bias=True, assumes=_NO_WINDOW),  # also Qwen2.5
    "qwen3": Family("Qwen3ForCausalLM", qk_norm=True, assumes=(("attention_bias", False),) + _NO_WINDOW),
}
