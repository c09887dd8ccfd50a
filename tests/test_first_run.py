"""The first real run (issue 10): real-shaped tokenizers, stop strings during decoding, fail-fast preflight,
length buckets, attention implementations, and a rehearsal of the unmodified paper configs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interlingua_jax import evaluate
from interlingua_jax.data import pipeline
from interlingua_jax.models import CausalLM, DecoderConfig, generate


def markov_lm(next_token: dict[int, int], vocab: int) -> CausalLM:
  """A 1-layer LM whose greedy next token depends only on the current one: zero layers (the residual passes
  the one-hot embedding through), lm_head a permutation-like map t → next_token[t]."""
  config = DecoderConfig(model_type="llama", vocab_size=vocab, hidden_size=vocab, intermediate_size=4, num_layers=1,
                         num_heads=1, num_kv_heads=1, head_dim=8, bos_token_id=None, eos_token_id=(vocab - 1,))
  z = lambda *shape: jnp.zeros((1, *shape), jnp.float32)
  head = np.zeros((vocab, vocab), np.float32)
  for t, n in next_token.items():
    head[t, n] = 1.0
  params = {"embed": jnp.eye(vocab), "final_norm": jnp.ones(vocab), "lm_head": jnp.asarray(head),
            "layers": {"attn_norm": jnp.ones((1, vocab)), "mlp_norm": jnp.ones((1, vocab)), "q": z(vocab, 1, 8),
                       "k": z(vocab, 1, 8), "v": z(vocab, 1, 8), "o": z(1, 8, vocab), "gate": z(vocab, 4),
                       "up": z(vocab, 4), "down": z(4, vocab)}}
  return CausalLM(config, params)


def test_stop_strings_end_decoding_early_with_identical_predictions(tiny_tokenizer):
  """A completion that runs on into "\\nQ: ..." and never emits EOS: the loop ends a few tokens after the
  stop string instead of at max_new_tokens, and every prediction is what post-hoc cutting gave."""
  text = " The answer is 42.\nQ: Which"
  ids = pipeline.token_ids(tiny_tokenizer, text)
  assert len(set(ids)) == len(ids), "the chain must not revisit a token"
  chain = {a: b for a, b in zip(ids, ids[1:])}
  chain[ids[-1]] = ids[ids.index(pipeline.token_ids(tiny_tokenizer, "\n")[0])]  # "\nQ: Which" forever, no EOS
  model = markov_lm(chain, len(tiny_tokenizer))
  starts = [ids[0], ids[2]]  # the rows start at different points of the chain
  prompt = np.array([[0, 0, s] for s in starts], np.int32)
  mask = np.array([[0, 1, 1], [1, 1, 1]], np.int32)
  stop_strings, max_new, every = ("\nQ:",), 64, 4
  kwargs = dict(input_ids=prompt, attention_mask=mask, max_new_tokens=max_new, pad_token_id=0)
  full = generate(model, **kwargs)
  early = generate(model, **kwargs, stop=evaluate.stop_predicate(tiny_tokenizer, stop_strings),
                   stop_check_every=every)
  assert int(full.steps) == max_new
  newline = ids.index(pipeline.token_ids(tiny_tokenizer, "\n")[0])
  q_colon = newline + len(pipeline.token_ids(tiny_tokenizer, "Q:"))  # generated tokens up to the stop string, row 0
  assert q_colon <= int(early.steps) < q_colon + every  # the first check that sees row 0's stop string
  predict = lambda out, i: evaluate.stop_at(evaluate.decode_text(tiny_tokenizer, np.asarray(out.tokens[i]),
                                                                 int(out.lengths[i])), stop_strings)
  assert [predict(early, i) for i in range(2)] == [predict(full, i) for i in range(2)]
  assert predict(full, 0) == tiny_tokenizer.decode(ids[1:]).split("\nQ:")[0] == " answer is 42."
  assert not (np.asarray(early.tokens)[:, int(early.steps):] != 0).any()  # nothing decoded after the loop ended
