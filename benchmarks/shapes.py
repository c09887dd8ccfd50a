"""Model shapes the benchmarks run: the real 7B/8B ones (random weights) and a small CPU one."""
import tempfile

import jax

from interlingua_jax import models
from interlingua_jax.models import DecoderConfig

SMALL = DecoderConfig(model_type="llama", vocab_size=8192, hidden_size=256, intermediate_size=768, num_layers=4,
                      num_heads=8, num_kv_heads=4, head_dim=32, rope_theta=500000.0, bos_token_id=1,
                      eos_token_id=(2,), pad_token_id=0, max_position_embeddings=4096)
LLAMA_31_8B = DecoderConfig(
    model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
    num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
    bos_token_id=128000, eos_token_id=(128001, 128008, 128009), max_position_embeddings=131072)
MISTRAL_7B_V03 = DecoderConfig(
    model_type="mistral", vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
    num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=1e6, bos_token_id=1, eos_token_id=(2,),
    max_position_embeddings=32768)


def small_models():
  """The SMALL config with random float32 weights, as the project's `CausalLM` and as transformers' torch model
  (written by `save_pretrained`, read by `AutoModelForCausalLM`): the same weights on both sides."""
  import torch
  from transformers import AutoModelForCausalLM
  params = models.init_params(SMALL, jax.random.key(0))
  with tempfile.TemporaryDirectory() as path:
    models.save_pretrained(path, SMALL, params)
    torch_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
  return models.CausalLM(SMALL, params), torch_model
