"""KV fusion at evaluation: the `CacheSource` of trained fusers, and the variants its controls read.

For a batch of target prompts, the source reads the prompt of the question each row's method names (its own,
or a donor's for `latent_shuffled`), prefills it, and its cache is brought to the target's slots by the
character alignment of that question's two tokenizations, right-aligned to the row (the prompts end together).
The fusers then rewrite the target's prompt cache once, with the hard 0/1 gate, inside `generate`.

Variants (`Method.variant`, the kind's controls):
  gates_off  every gate closed: the target's own cache, bit for bit (must answer as target_alone)
  zeroed     the source cache replaced by zeros
  noise      the source cache replaced by Gaussian noise with each source layer's per-channel mean and standard
             deviation over the batch's valid slots (seeded): the attenuation control, same statistics, no signal
"""
import dataclasses
import hashlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from interlingua_jax.bridges.kv_fusion import rows as fusion_rows
from interlingua_jax.bridges.kv_fusion.generation import FusedCacheTransform
from interlingua_jax.bridges.kv_fusion.loss import source_at_target_slots
from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.evaluation.harness import left_pad
from interlingua_jax.models import CausalLM, KVCache
from interlingua_jax.models.generate import prefill_prompt, to_host
from interlingua_jax.training.state import merge_module

VARIANTS = ("", "gates_off", "zeroed", "noise")


@jax.jit
def _noise(cache: KVCache, key: jax.Array) -> KVCache:
  """Noise with the per-layer, per-channel mean and std of the cache's valid slots."""
  valid = cache.valid[None, :, :, None, None].astype(jnp.float32)
  count = jnp.maximum(jnp.sum(valid, axis=(1, 2), keepdims=True), 1.0)

  def like(x, k):
    x32 = x.astype(jnp.float32)
    mean = jnp.sum(x32 * valid, axis=(1, 2), keepdims=True) / count
    std = jnp.sqrt(jnp.sum(((x32 - mean) * valid) ** 2, axis=(1, 2), keepdims=True) / count)
    return (mean + std * jax.random.normal(k, x.shape, jnp.float32)).astype(x.dtype)

  key_k, key_v = jax.random.split(key)
  return dataclasses.replace(cache, k=like(cache.k, key_k), v=like(cache.v, key_v))


_aligned = jax.jit(source_at_target_slots)


@dataclasses.dataclass(frozen=True)
class FusionSource:
  """`CacheSource` of trained fusers: both LMs read the question's prompt; the fusers rewrite the target's cache."""
  module: tuple  # (graphdef, params, rest) as `TrainState` holds them
  source: CausalLM
  source_tokenizer: object
  target_tokenizer: object
  builder: pipeline.PromptBuilder
  layer_map: tuple[int | None, ...]
  length_buckets: tuple[int, ...]  # the source prompts are padded to these (eval.length_buckets)
  control_seed: int = 0  # the noise control's seed

  def text(self, example: Example) -> str:
    return self.builder.source_prompt(example)

  def _aligned_prompt(self, example: Example):
    return fusion_rows.prompt_alignment(self.builder, self.source_tokenizer, self.target_tokenizer,
                                        self.text(example))

  def ids(self, example: Example) -> list[int]:
    return self._aligned_prompt(example)[0]

  def target_ids(self, example: Example) -> list[int]:
    return self._aligned_prompt(example)[1]

  @property
  def sent_layers(self) -> list[int]:
    """The source layers whose cache the target reads (one per fused target layer)."""
    return sorted({s for s in self.layer_map if s is not None})

  def packet_shape(self, example: Example) -> tuple[int, int]:
    """The sent layers' keys and values of every source token: (2 x layers x tokens, kv heads x head dim)."""
    c = self.source.config
    return 2 * len(self.sent_layers) * len(self.ids(example)), c.num_kv_heads * c.head_dim

  def summary(self) -> dict:
    """The learned gates, per fused target layer: its logit, and whether inference fuses it (logit > 0)."""
    fusers = merge_module(*self.module)
    logits = [float(f.gate_logit[...]) for f in fusers]
    fused = [t for t, s in enumerate(self.layer_map) if s is not None]
    return {"gates": [{"target_layer": t, "source_layer": self.layer_map[t], "logit": g, "open": g > 0}
                      for t, g in zip(fused, logits)]}

  def _wire(self, cache: KVCache, mask: np.ndarray, round_trip: Callable[[np.ndarray], np.ndarray]) -> KVCache:
    """The cache after each row's packet (its sent layers' k and v over its real tokens) went over the wire."""
    k, v = np.array(to_host(cache.k)), np.array(to_host(cache.v))
    layers = self.sent_layers
    for b in range(mask.shape[0]):
      real = np.flatnonzero(mask[b])
      sent = np.stack([k[layers][:, b][:, real], v[layers][:, b][:, real]])  # (2, layers, tokens, K, D)
      back = round_trip(sent.reshape(-1, sent.shape[-2] * sent.shape[-1]).astype(np.float32)).reshape(sent.shape)
      for i, layer in enumerate(layers):
        k[layer, b, real], v[layer, b, real] = back[0, i], back[1, i]
    return dataclasses.replace(cache, k=jnp.asarray(k, cache.k.dtype), v=jnp.asarray(v, cache.v.dtype))

  def transform(self, read: Sequence[Example], target_ids: np.ndarray, target_mask: np.ndarray, variant: str,
                soft_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> FusedCacheTransform:
    if variant not in VARIANTS:
      raise ValueError(f"unknown KV fusion variant {variant!r}; known: {', '.join(map(repr, VARIANTS))}.")
    prompts = [self._aligned_prompt(e) for e in read]
    rows = [p[0] for p in prompts]
    width = pipeline.bucket(max(map(len, rows)), self.length_buckets)
    source_ids, source_mask = left_pad(rows, width, self.source_tokenizer.pad_token_id)
    _, cache = prefill_prompt(self.source, input_ids=source_ids, attention_mask=source_mask)
    if soft_transform is not None:
      cache = self._wire(cache, source_mask, soft_transform)
    length = target_ids.shape[1]
    index = np.full((len(read), length), -1, np.int32)
    for b, (_, _, alignment) in enumerate(prompts):  # right-aligned: the two prompts end together
      n = min(int(target_mask[b].sum()), len(alignment))
      index[b, length - n:] = alignment[len(alignment) - n:]
    aligned = _aligned(cache, jnp.asarray(index), jnp.asarray(source_mask))
    if variant == "zeroed":
      aligned = dataclasses.replace(aligned, k=jnp.zeros_like(aligned.k), v=jnp.zeros_like(aligned.v))
    elif variant == "noise":
      digest = hashlib.blake2b("\0".join(e.id for e in read).encode(), digest_size=4).digest()
      key = jax.random.fold_in(jax.random.key(self.control_seed), int.from_bytes(digest, "little") >> 1)
      aligned = _noise(aligned, key)
    graphdef, state = nnx.split(merge_module(*self.module))
    return FusedCacheTransform(state=state, source=aligned, graphdef=graphdef, layer_map=self.layer_map,
                               gates_off=variant == "gates_off", hard=True)
