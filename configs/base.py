"""Base configuration: the reference hyperparameters of docs/DESIGN.md §2 (stable_64 on GSM8K).

Every experiment file imports this and changes only what differs. An ablation is a
config file, never a code branch.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "stable_64"
  c.seed = 1234

  # Frozen LLMs: a local HF checkpoint directory or a hub id (hub ids need the network).
  c.source = ml_collections.ConfigDict()
  c.source.path = "mistralai/Mistral-7B-Instruct-v0.3"
  c.source.dtype = "bfloat16"
  c.source.layer = -1  # which hidden state feeds the translator (HF indexing: 0 = embeddings, -1 = after final norm)
  c.target = ml_collections.ConfigDict()
  c.target.path = "meta-llama/Llama-3.1-8B-Instruct"
  c.target.dtype = "bfloat16"

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "gsm8k"  # a registered dataset (data/kinds.py): gsm8k | hotpotqa | toy | squad
  c.data.hf_name = "openai/gsm8k"
  c.data.hf_config = "main"
  c.data.train_path = ""  # local .jsonl / .parquet; empty = load c.data.hf_name through `datasets`
  c.data.test_path = ""
  c.data.train_split = "train"  # split names for `datasets` (and the ids of rows without an id field)
  c.data.test_split = "test"
  c.data.num_shots = 8
  c.data.shot_seed = 42
  # Exemplars in the prompt the source reads for the soft tokens (-1: all num_shots). The bridged target row
  # shows none, so on a CPU fewer cut the source's compute (the text methods always read all num_shots).
  c.data.bridge_shots = -1
  c.data.shuffle_seed = 1234
  c.data.validation_seed = 0  # which train questions form the validation split (train.eval_num_samples of them)
  # Source prompt tokens (both tokenizers, BOS included). Over it, exemplars (HotpotQA: context paragraphs)
  # are dropped from the end; an example whose question alone is over it is skipped and counted.
  c.data.max_source_len = 2048
  c.data.max_answer_len = 256  # target answer tokens in teacher forcing (+ EOS)
  # Target prompt text after the soft tokens. Its trailing whitespace goes with the answer: the target
  # reads "Answer:" then " Natalia" (one space), and generates from "Answer:".
  c.data.answer_anchor = "Answer: "
  # Instruct checkpoints: wrap every text prompt as one user turn of the tokenizer's chat template
  # (the bridged row [BOS][soft][anchor] is not wrapped). Off: both models read raw completions.
  c.data.chat_template = False
  # Training batches are padded to the smallest bucket that holds their longest row (source and target
  # separately, at most the pool's longest): at most len(buckets)^2 compiled train-step shapes. The
  # interlingua's batches cut the encoder's input the same way (its target rows have one width).
  c.data.length_buckets = (128, 256, 512, 1024, 2048)
  c.data.num_workers = 0

  c.model = ml_collections.ConfigDict()
  # Attention of both frozen LMs in training, evaluation and generation: "xla" (dense, everywhere) or
  # "cudnn" (fused flash attention; NVIDIA GPU and bfloat16/float16 only, refused elsewhere).
  c.model.attention_impl = "xla"

  # Which trainable bridge (interlingua_jax/bridges/): "translator" (source LM -> soft tokens -> one target),
  # "interlingua" (text -> one shared Z -> an adapter per target of `interlingua.targets`) or "kv_fusion"
  # (the source's prompt KV cache rewrites the target's).
  c.bridge = ml_collections.ConfigDict()
  c.bridge.kind = "translator"

  # The shared interlingua (docs/DESIGN.md §2): read only when bridge.kind is not "translator".
  c.interlingua = ml_collections.ConfigDict()
  c.interlingua.encoder = "bytes"  # "bytes": UTF-8 bytes of the text; "states": the frozen source LM's states
  c.interlingua.latent_dim = 256  # d_z
  c.interlingua.num_soft_tokens = 32  # M: rows of Z, soft tokens of every target
  c.interlingua.depth = 2  # byte-encoder layers
  c.interlingua.num_heads = 8
  c.interlingua.max_bytes = 512  # the encoder reads the question first, then the context, cut at this many bytes
  c.interlingua.calibrate_rms = False  # rescale each adapter's outputs to its target's embedding RMS
  c.interlingua.first_token_weight = 1.0  # weight of the first answer token's cross-entropy
  c.interlingua.k_tokens = 4  # teacher forcing over the first K answer tokens
  c.interlingua.pca_fit_texts = 2000  # training texts the PCA baseline (eval method "pca") is fitted on
  # The frozen targets, each {"name", "path" (directory or hub id), "dtype", "tokenizer" ("" = the checkpoint's)}.
  c.interlingua.targets = ()

  # KV-cache fusion (Cache-to-Cache): read only when bridge.kind is "kv_fusion".
  c.kv_fusion = ml_collections.ConfigDict()
  c.kv_fusion.hidden_size = 256  # each fuser's projection and MLP width
  c.kv_fusion.gate_init = 1.0  # the per-layer gate logits' start: > 0 open under the hard gate of inference
  c.kv_fusion.head_init = 0.0  # per-head weight logits' start (sigmoid 0.5)
  c.kv_fusion.output_init_scale = 1e-2  # an untrained fuser barely perturbs the target
  c.kv_fusion.gate_temperature_start = 1.0  # Gumbel-sigmoid temperature, annealed exponentially...
  c.kv_fusion.gate_temperature_end = 0.05  # ...to this, so training ends near the hard 0/1 gate
  c.kv_fusion.anneal_steps = 3000  # steps of the anneal (then the end temperature)
  c.kv_fusion.sharer = "source"  # "target": the identical-sharer control, the target fused with its own cache

  c.translator = ml_collections.ConfigDict()
  c.translator.num_soft_tokens = 64
  c.translator.bottleneck = 1024
  c.translator.depth = 8
  c.translator.num_heads = 16
  c.translator.dropout = 0.1
  c.translator.calibrate_rms = True
  c.translator.reads_source = True  # False: the prompt-tuning control (soft tokens that never see the question)

  c.loss = ml_collections.ConfigDict()
  c.loss.infonce_weight = 0.05
  c.loss.infonce_start_step = 375  # half the warmup
  c.loss.temperature = 0.07

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-4
  c.optim.warmup_steps = 750
  c.optim.b1 = 0.9
  c.optim.b2 = 0.98
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.01
  c.optim.gate_lr_multiplier = 3.0
  c.optim.clip_norm = 1.0

  c.train = ml_collections.ConfigDict()
  c.train.steps = 3000
  c.train.batch_size = 32
  c.train.log_every = 10
  c.train.eval_every = 250
  c.train.eval_num_samples = 200  # the validation split, carved from train: evaluation during training
  c.train.early_stopping = True
  c.train.patience = 5
  c.train.keep_checkpoints = 2
  c.train.remat = True  # recompute the frozen target's layers in the backward pass: activations of 8B fit
  # Compute the frozen source's states of the training pool once, into <workdir>/source_cache, and train from them
  # (no source forward in the train step). Disk: the pool's source tokens x d_src x 2 bytes (bf16), 8 KB a token
  # for a 4096-wide source.
  c.train.cache_source_states = True

  c.eval = ml_collections.ConfigDict()
  # Registered in interlingua_jax/methods.py; the last two are controls (a real bridge is far above them).
  c.eval.methods = ("source_alone", "target_alone", "latent", "token_budget", "text_relay", "latent_shuffled",
                    "no_latent")
  c.eval.control_seed = 0  # the derangement that gives latent_shuffled each question another's soft tokens
  c.eval.num_samples = 500
  c.eval.subset_seed = 0  # which test questions are evaluated when the split holds more than eval.num_samples
  c.eval.batch_size = 8
  c.eval.max_new_tokens = 256
  c.eval.stop_strings = ("\nQ:",)
  c.eval.repetition_penalty = 1.0  # 1.1 was tried by the first implementation; off by default
  c.eval.no_repeat_ngram_size = 0  # 3 was tried; off by default
  c.eval.length_buckets = (128, 256, 512, 1024, 2048)
  c.eval.latency_batch_sizes = (1, 4, 8)
  c.eval.latency_samples = 8  # questions timed alone at batch 1 (time to first token, decoding); 0: none
  c.eval.bootstrap_samples = 10000

  c.compression = ml_collections.ConfigDict()
  c.compression.formats = ("fp16", "bf16", "int8", "int6", "int4")
  c.compression.group_size = 32
  c.compression.num_samples = 200

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: all devices not used by "model"
  c.mesh.model = 1

  c.profile = ml_collections.ConfigDict()
  c.profile.start_step = -1  # -1: no trace
  c.profile.num_steps = 3
  return c
