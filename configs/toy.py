"""toy: the offline toy world, the embedded default of `python -m interlingua_jax.main`.

Two tiny LMs of the two families (a Mistral-architecture source, a Llama-architecture
target, different tokenizers) are pretrained from scratch on a synthetic GSM8K-format task
(cached under the workdir), then the translator is trained with the stability fixes and
every evaluation method, the wire analysis and a report follow — minutes on a CPU.
"""
import ml_collections

from configs import base


def get_config():
  c = base.get_config()
  c.name = "toy"
  c.seed = 0

  c.toy = ml_collections.ConfigDict()
  c.toy.cache_dir = ""  # "" = <workdir>/toy; suites share one so the LMs are pretrained once
  c.toy.world = ml_collections.ConfigDict()
  c.toy.world.seed = 0
  c.toy.world.num_train = 20000
  c.toy.world.num_test = 500
  c.toy.world.pretrain_steps = 800
  c.toy.world.pretrain_batch_size = 32
  c.toy.world.pretrain_learning_rate = 3e-3
  c.toy.world.hidden_size = 64
  c.toy.world.num_layers = 2
  # How much a question carries (interlingua_jax.toy.task.TaskSpec); the defaults are the easy world.
  c.toy.world.task = ml_collections.ConfigDict(dict(
      num_steps=1, max_operand=9, num_entities=1, num_distractors=0, min_filler=2, max_filler=4, split="text",
      lookup=False, table_seed=0))
  c.source.path = ""  # set from the toy world
  c.target.path = ""
  c.source.dtype = c.target.dtype = "float32"
  c.source.layer = 1  # the middle of the 2-layer source: learns ~2x faster than the final layer (measured)

  c.data.dataset = "toy"
  c.data.num_shots = 0
  c.data.max_source_len = 128
  c.data.max_answer_len = 24
  c.data.answer_anchor = "\nA:"  # the soft tokens stand in for "Q: <question>"

  c.translator.num_soft_tokens = 8
  c.translator.bottleneck = 128
  c.translator.depth = 2
  c.translator.num_heads = 4
  c.translator.dropout = 0.0

  c.loss.infonce_start_step = 50  # half the warmup, as in the reference
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 100

  c.train.steps = 1000
  c.train.batch_size = 32
  c.train.log_every = 10
  c.train.eval_every = 250
  c.train.eval_num_samples = 100
  c.train.patience = 5
  c.train.remat = False

  c.eval.methods = (*c.eval.methods, "chance", "prior")
  c.eval.num_samples = 500
  c.eval.batch_size = 100
  c.eval.max_new_tokens = 16
  c.eval.length_buckets = (32, 64, 128)
  c.eval.bootstrap_samples = 2000
  c.compression.num_samples = 200
  c.mesh.data = 1
  return c
