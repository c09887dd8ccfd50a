"""`bridge.kind = "translator"`: frozen source LM → `Translator` → M soft tokens of one frozen target LM.

The source reads the bridge prompt; its hidden states of `source.layer` are the translator's only input; the
target reads [BOS][M soft tokens][anchor] and answers. One evaluation view (label None).
"""
import logging
import os

import ml_collections
from flax import nnx

from interlingua_jax.bridges.kind import ModelSpec, Setup, Training, make_context
from interlingua_jax.bridges.translator import rows, source_cache
from interlingua_jax.bridges.translator.loss import LossSpec, translator_loss
from interlingua_jax.bridges.translator.module import Translator
from interlingua_jax.bridges.translator.source import TranslatorSource
from interlingua_jax.core.context import Run
from interlingua_jax.core.rules import at_least, fail, flag, get, within, above
from interlingua_jax.data import pipeline
from interlingua_jax.evaluation.context import Context
from interlingua_jax.models import CausalLM
from interlingua_jax.models.frozen import Frozen, ModelFiles, resolve_layer
from interlingua_jax.models.sharding import param_shardings
from interlingua_jax.nn.blocks import embedding_rms


def translator_training(cfg: ml_collections.ConfigDict, source: CausalLM, target: CausalLM, layer: int,
                        lengths: rows.Lengths, mesh) -> tuple:
  """(loss, frozen shardings) of the translator between two loaded LMs at static `lengths`: what the train step
  needs of the kind, also for benchmarks that build the LMs themselves."""
  spec = LossSpec(source.config, target.config, layer, infonce_weight=cfg.loss.infonce_weight,
                  infonce_start_step=cfg.loss.infonce_start_step, temperature=cfg.loss.temperature,
                  answer_window=lengths.answer + 2, remat=cfg.train.remat, attention_impl=cfg.model.attention_impl)
  loss = lambda module, frozen, batch, step: translator_loss(module, frozen, batch, step, spec=spec)
  return loss, (param_shardings(source.config, mesh), param_shardings(target.config, mesh))


def new_translator(cfg: ml_collections.ConfigDict, source: CausalLM, target: CausalLM) -> Translator:
  """A fresh translator sized for the two frozen models, calibrated to the target's embedding RMS."""
  t = cfg.translator
  return Translator(source_dim=source.config.hidden_size, target_dim=target.config.hidden_size,
                    num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck, depth=t.depth, num_heads=t.num_heads,
                    dropout=t.dropout,
                    target_embed_rms=embedding_rms(target.params["embed"]) if t.calibrate_rms else None,
                    rngs=nnx.Rngs(params=cfg.seed, dropout=cfg.seed + 1), reads_source=t.reads_source)


class TranslatorKind:
  name = "translator"
  section = "translator"
  rules = {
      "translator.num_soft_tokens": at_least(1),
      "translator.bottleneck": at_least(1),
      "translator.depth": at_least(1),
      "translator.num_heads": at_least(1),
      "translator.dropout": within(0.0, 1.0),
      "translator.calibrate_rms": flag,
      "translator.reads_source": flag,
      "loss.infonce_weight": at_least(0.0, integer=False),
      "loss.infonce_start_step": at_least(0),
      "loss.temperature": above(0.0),
  }
  methods = ()
  stages = {}
  added_keys = {"translator.reads_source": True}
  renamed_keys = {}

  def check(self, cfg: ml_collections.ConfigDict) -> None:
    if get(cfg, "translator.bottleneck") % get(cfg, "translator.num_heads"):
      fail("translator.bottleneck", cfg.translator.bottleneck,
           f"must be divisible by translator.num_heads={cfg.translator.num_heads}")

  def num_soft_tokens(self, cfg: ml_collections.ConfigDict) -> int:
    return cfg.translator.num_soft_tokens

  def models(self, cfg: ml_collections.ConfigDict) -> dict[str, ModelSpec]:
    return {side: ModelSpec(cfg[side].path, cfg[side].dtype, f"{side}.path") for side in ("source", "target")}

  def check_models(self, cfg: ml_collections.ConfigDict, files: dict[str, ModelFiles]) -> None:
    resolve_layer(cfg.source.layer, files["source"].config.num_layers)

  def builders(self, cfg, files, exemplars) -> dict[None, pipeline.PromptBuilder]:
    d = cfg.data
    return {None: pipeline.PromptBuilder(d.dataset, exemplars, files["source"].tokenizer, files["target"].tokenizer,
                                         d.max_source_len, d.chat_template,
                                         bridge_shots=None if d.bridge_shots < 0 else d.bridge_shots)}

  def new_module(self, run: Run, setup: Setup) -> Translator:
    return new_translator(run.cfg, setup.models["source"].lm, setup.models["target"].lm)

  def training(self, run: Run, setup: Setup) -> Training:
    cfg, builder = run.cfg, setup.builders[None]
    source, target = setup.models["source"], setup.models["target"]
    lengths = rows.measure_lengths(setup.train, builder=builder, target_tokenizer=target.tokenizer,
                                   anchor=cfg.data.answer_anchor, num_soft_tokens=cfg.translator.num_soft_tokens,
                                   max_answer_len=cfg.data.max_answer_len)
    logging.info("static lengths: %s", lengths)
    encoded = rows.encode_pool(setup.train, builder=builder, target_tokenizer=target.tokenizer,
                               anchor=cfg.data.answer_anchor, num_soft_tokens=cfg.translator.num_soft_tokens,
                               lengths=lengths)
    layer = resolve_layer(cfg.source.layer, source.lm.config.num_layers)
    states = None  # the frozen source's states of the pool, computed once into the workdir (source_cache)
    if cfg.train.cache_source_states:
      states = source_cache.load_or_build(
          os.path.join(run.workdir, source_cache.CACHE_DIR), encoded, model_path=run.paths.models["source"],
          params=source.lm.params, config=source.lm.config, layer=layer, dtype=cfg.source.dtype,
          attention_impl=cfg.model.attention_impl, mesh=setup.mesh, length_buckets=tuple(cfg.data.length_buckets),
          batch_size=cfg.train.batch_size)
    loss, shardings = translator_training(cfg, source.lm, target.lm, layer, lengths, setup.mesh)
    # The scale the soft tokens' logged `soft_rms` is read against (calibrated translators output exactly it).
    summary = {"target_embedding_rms": embedding_rms(target.lm.params["embed"])}
    return Training(encoded, loss, (source.lm.params, target.lm.params), shardings, parts=rows.PARTS,
                    source_states=states, summary=summary)

  def contexts(self, run: Run, setup: Setup, module: tuple | None) -> dict[None, Context]:
    source, target, builder = setup.models["source"], setup.models["target"], setup.builders[None]
    frozen = Frozen(source.lm, source.tokenizer, target.lm, target.tokenizer,
                    resolve_layer(run.cfg.source.layer, source.lm.config.num_layers), source.stop_ids,
                    target.stop_ids)
    soft = None if module is None else TranslatorSource(module, frozen, builder, setup.mesh,
                                                         tuple(run.cfg.eval.length_buckets))
    return {None: make_context(run, setup, frozen=frozen, builder=builder,
                               num_soft_tokens=run.cfg.translator.num_soft_tokens, soft_source=soft)}

  def method_contexts(self, run, setup, label, ctx) -> dict:
    return {}


TRANSLATOR = TranslatorKind()
