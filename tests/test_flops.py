"""FLOP and byte counts of `interlingua_jax.models.flops` against hand arithmetic and published parameter counts."""
import jax
import pytest

from interlingua_jax import models
from interlingua_jax.models import flops

SHAPE_8B = dict(hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128)
LLAMA_31_8B = models.DecoderConfig(model_type="llama", vocab_size=128256, **SHAPE_8B)
MISTRAL_7B_V03 = models.DecoderConfig(model_type="mistral", vocab_size=32768, **SHAPE_8B)
# By hand: layer = d·hd·(2·H + 2·K) + 3·d·F = 2·2·(2 + 2) + 3·2·3 = 16 + 18 = 34; head = d·V = 2·10 = 20.
HAND = models.DecoderConfig(model_type="llama", vocab_size=10, hidden_size=2, intermediate_size=3, num_layers=2,
                            num_heads=1, num_kv_heads=1, head_dim=2)


def test_hand_computed_parameter_counts():
  assert flops.layer_matmul_params(HAND) == 34
  assert flops.matmul_params(HAND) == 2 * 34 + 20
  assert flops.matmul_params(HAND, 1, head=False) == 34
  assert flops.weight_bytes(HAND, bytes_per_element=1) == 2 * 34 + 20 + (2 * 2 + 1) * 2  # + 5 norm scales of 2


@pytest.mark.parametrize("shape, published", [(LLAMA_31_8B, 8_030_261_248), (MISTRAL_7B_V03, 7_248_023_552)])
def test_matmul_weights_plus_embedding_and_norms_give_the_published_totals(shape, published):
  """Model cards: Llama-3.1-8B has 8,030,261,248 parameters, Mistral-7B-v0.3 7,248,023,552 (untied heads)."""
  embedding = shape.vocab_size * shape.hidden_size
  assert flops.weight_bytes(shape, bytes_per_element=1) + embedding == published
  assert flops.matmul_params(LLAMA_31_8B) == 32 * 218_103_808 + 525_336_576  # 4096·128·80 + 3·4096·14336 per layer


def test_weight_bytes_are_the_decoders_arrays_without_the_embedding():
  params = jax.eval_shape(lambda: models.init_params(HAND, jax.random.key(0)))  # shapes only, nothing computed
  nbytes = lambda x: x.size * x.dtype.itemsize
  stored = sum(nbytes(x) for x in jax.tree.leaves(params)) - nbytes(params["embed"])
  assert flops.weight_bytes(HAND, bytes_per_element=4) == stored


def test_train_step_flops_by_hand():
  parts = flops.train_step_flops(source=HAND, source_layers=1, target=HAND, bridge_params=7, batch=3,
                                 source_len=5, target_len=11, answer_window=4, num_soft_tokens=2)
  assert parts == {
      "source forward": 2 * 34 * 3 * 5,  # 2·N_source (1 layer, no head) per source token
      "target forward + input backward": 4 * (2 * 34) * 3 * 11,  # 4·N_target (layers) per target token
      "target head (answer window)": 4 * 20 * 3 * 4,
      "bridge forward + backward": 6 * 7 * 3 * 2,  # 6·N_bridge per soft token
  }
  with pytest.raises(ValueError, match="num_layers=3"):
    flops.train_step_flops(source=HAND, source_layers=3, target=HAND, bridge_params=7, batch=1, source_len=1,
                           target_len=1, answer_window=1, num_soft_tokens=1)


def test_forward_flops_by_hand():
  # 2·N·B·S + 4·L·B·S²·H·hd = 2·88·3·5 + 4·2·3·25·1·2
  assert flops.forward_flops(HAND, batch=3, seq=5) == 2640 + 1200


def test_decode_bound_for_llama_31_8b_bf16():
  """Weights (bf16, no embedding) + 512 tokens of KV at 128 KiB each; the bound is batch·bandwidth / bytes."""
  weights = (7_504_658_432 + 65 * 4096) * 2
  step = flops.decode_step_bytes(LLAMA_31_8B, batch=2, context_len=512)
  assert step == weights + 2 * 512 * 131_072
  assert flops.decode_bound_tokens_per_s(step, bandwidth=3.0e12, batch=2) == pytest.approx(2 * 3.0e12 / step)
  with pytest.raises(ValueError, match="bandwidth"):
    flops.decode_bound_tokens_per_s(step, bandwidth=0.0, batch=1)
