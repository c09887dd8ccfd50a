"""interlingua_squad_32: one shared interlingua for Llama-3.1-8B and Qwen2.5-7B on SQuAD v1.1 (docs/DESIGN.md §2).

The original design's settings: a byte-level encoder (d_z = 256, 2 layers, 8 heads, sinusoidal positions over
at most 512 UTF-8 bytes), M = 32 latent queries, an adapter (LayerNorm + Linear) per target, the first answer
token's cross-entropy at weight 0.5 plus K = 4-token teacher forcing, batch 32, 3 epochs of the 87,599 SQuAD
training questions. Evaluated per target against the text baseline (target_alone), the token budget of the
same M (token_budget_text), a linear compression of the same text to M vectors (pca: what needs no learned
encoder), the knowledge-free prior, and the controls.
"""
import math

from configs import base

SQUAD_TRAIN = 87_599
EPOCHS = 3


def get_config():
  c = base.get_config()
  c.name = "interlingua_squad_32"
  c.bridge.kind = "interlingua"
  c.interlingua.encoder = "bytes"
  c.interlingua.latent_dim = 256
  c.interlingua.num_soft_tokens = 32
  c.interlingua.depth = 2
  c.interlingua.num_heads = 8
  c.interlingua.max_bytes = 512
  c.interlingua.calibrate_rms = False
  c.interlingua.first_token_weight = 0.5
  c.interlingua.k_tokens = 4
  c.interlingua.targets = (
      dict(name="llama", path="meta-llama/Llama-3.1-8B", dtype="bfloat16", tokenizer=""),
      dict(name="qwen", path="Qwen/Qwen2.5-7B", dtype="bfloat16", tokenizer=""),
  )

  c.data.dataset = "squad"
  c.data.hf_name = "rajpurkar/squad"
  c.data.hf_config = ""
  c.data.train_split = "train"
  c.data.test_split = "validation"
  c.data.num_shots = 0
  c.data.max_source_len = 1024  # the text baseline's prompt (context + question), both tokenizers
  c.data.answer_anchor = "Answer: "

  c.train.batch_size = 32
  c.train.steps = math.ceil(EPOCHS * SQUAD_TRAIN / c.train.batch_size)  # 8,213
  c.train.eval_every = 500
  c.train.eval_num_samples = 200
  c.optim.warmup_steps = 500

  c.eval.methods = ("target_alone", "latent", "token_budget_text", "pca", "latent_shuffled", "no_latent", "chance",
                    "prior")
  c.eval.num_samples = 1000
  c.eval.batch_size = 32
  c.eval.max_new_tokens = 24
  c.eval.stop_strings = ("\n",)
  c.eval.length_buckets = (64, 256, 512, 1024)
  return c
