"""The zoo's real models (GGUF files from PyPI packages) through the Flax port against transformers.

For each model: load times (the zoo's resolution, the port's `from_pretrained`, transformers'
`from_pretrained(gguf_file=)` of the same file, both dequantizing to float32), the logits of a
left-padded batch of real chat prompts (max |Δ| over real positions ÷ max |reference|), greedy
generation token for token against HF `generate(do_sample=False)` with the same stop ids, and the mean
next-token loss of a plain English passage with llama.cpp's q/k row permutation undone and not: the
order the port reads a file in must be the one that models text, not just the one transformers picks.
tests/test_gguf.py checks SmolLM2 the same way; the Qwen2.5 model (~0.5 GB, 30 s to load in
transformers) is checked here. Needs `pip install -e ".[real]"` for Qwen and the README's test install
for SmolLM2.

  python benchmarks/real_parity.py [--models zoo:smollm2-135m-instruct zoo:qwen2.5-coder-0.5b-instruct]
                                   [--new_tokens 32]
"""
import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from transformers import AutoModelForCausalLM

from interlingua_jax import models
from interlingua_jax.models import gguf, loading, zoo
from interlingua_jax.models.decoder import CausalLM

QUESTIONS = ["What is the capital of France?", "Write a haiku about autumn rain.",
             "Explain in one sentence why the sky is blue."]
PASSAGE = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is the capital "
           "of Germany. Water boils at one hundred degrees Celsius at sea level.")


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def passage_loss(model: CausalLM, tokenizer) -> float:
  ids = np.array([tokenizer(PASSAGE).input_ids])
  logits = model(input_ids=jnp.asarray(ids)).logits[0, :-1]
  return float(-jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(ids[0, 1:, None]), 1).mean())


def check(name: str, new_tokens: int) -> None:
  file, resolve_s = timed(lambda: zoo.resolve(name))
  (model, tokenizer), ours_s = timed(lambda: models.from_pretrained(name, dtype=jnp.float32))
  hf, hf_s = timed(lambda: AutoModelForCausalLM.from_pretrained(
      os.path.dirname(file), gguf_file=os.path.basename(file), dtype=torch.float32).eval())
  print(f"{name}: {model.config.model_type}, {model.config.num_layers} layers, d {model.config.hidden_size}; "
        f"resolve {resolve_s:.1f} s, port load (+ tokenizer) {ours_s:.1f} s, transformers load {hf_s:.1f} s")
  texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
           for q in QUESTIONS]
  tokenizer.padding_side = "left"
  encoded = tokenizer(texts, return_tensors="np", padding=True)
  ids, mask = encoded["input_ids"], encoded["attention_mask"]
  positions = np.clip(mask.cumsum(-1) - 1, 0, None)
  with torch.no_grad():
    ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
             position_ids=torch.tensor(positions)).logits.numpy()
  got = np.asarray(model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits)
  real = mask.astype(bool)
  print(f"  logits, {len(QUESTIONS)} left-padded chat prompts (lengths {mask.sum(1).tolist()}): max|Δ|/max|ref| = "
        f"{np.abs(got - ref)[real].max() / np.abs(ref[real]).max():.2e}")
  stops = loading.stop_token_ids(file, model.config, tokenizer)
  with torch.no_grad():
    want, hf_gen_s = timed(lambda: hf.generate(
        input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=new_tokens, do_sample=False,
        eos_token_id=list(stops), pad_token_id=tokenizer.pad_token_id).numpy()[:, ids.shape[1]:])
  out, gen_s = timed(lambda: np.asarray(models.generate(
      model, input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, eos_token_id=stops,
      pad_token_id=tokenizer.pad_token_id).tokens))
  want = np.pad(want, ((0, 0), (0, new_tokens - want.shape[1])), constant_values=tokenizer.pad_token_id)
  same = [bool((o == w).all()) for o, w in zip(out, want)]
  print(f"  greedy, {new_tokens} new tokens, stop ids {stops}: {sum(same)}/{len(same)} rows token-identical "
        f"(port {gen_s:.1f} s with compilation, transformers {hf_gen_s:.1f} s)")
  for q, row in zip(QUESTIONS, out):
    print(f"    {q!r} -> {tokenizer.decode(row, skip_special_tokens=True)!r}")
  flipped = ("llama", "qwen2") if model.config.model_type not in gguf.PERMUTED_ARCHITECTURES else ()
  as_read = passage_loss(model, tokenizer)
  saved = gguf.PERMUTED_ARCHITECTURES
  gguf.PERMUTED_ARCHITECTURES = flipped
  try:
    other = loading.load_model(file, dtype=jnp.float32)
  finally:
    gguf.PERMUTED_ARCHITECTURES = saved
  print(f"  passage loss (nats/token): {as_read:.3f} as the port reads q/k, {passage_loss(other, tokenizer):.3f} "
        f"with the permutation {'applied' if flipped else 'not undone'}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=list(zoo.names()))
  parser.add_argument("--new_tokens", type=int, default=32)
  args = parser.parse_args()
  for name in args.models:
    check(name, args.new_tokens)


if __name__ == "__main__":
  main()
