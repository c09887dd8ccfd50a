"""`bridge.kind = "kv_fusion"`: the frozen source LM's prompt cache rewrites the frozen target LM's, layer by layer
(Cache-to-Cache); the target then answers its own full prompt from the fused cache. No soft tokens (M = 0).

Both LMs read the same prompt text, each with its own tokenizer; each target token reads the source token that
covers its text (rows.prompt_alignment); target layers read source layers aligned from the top
(alignment.terminal_layer_map). One `Fuser` per fused layer trains; its gate logit is a `GateParam`, in the
optimizer's "gates" group (its own learning rate, no weight decay), and its Gumbel-sigmoid temperature anneals
from kv_fusion.gate_temperature_start to _end over kv_fusion.anneal_steps. kv_fusion.sharer = "target" is the
"identical sharer" control: the target fused with its own cache. One evaluation view (label None).
"""
import ml_collections
from flax import nnx

from interlingua_jax.bridges.kind import ModelSpec, Setup, Training, make_context
from interlingua_jax.bridges.kv_fusion import rows
from interlingua_jax.bridges.kv_fusion.alignment import terminal_layer_map
from interlingua_jax.bridges.kv_fusion.fuser import make_fusers
from interlingua_jax.bridges.kv_fusion.loss import LossSpec, kv_fusion_loss
from interlingua_jax.bridges.kv_fusion.methods import OWN_METHODS
from interlingua_jax.bridges.kv_fusion.source import FusionSource
from interlingua_jax.core.context import Run
from interlingua_jax.core.rules import above, at_least, fail, get, one_of, within
from interlingua_jax.data import pipeline
from interlingua_jax.evaluation.context import Context
from interlingua_jax.models.frozen import Frozen, ModelFiles
from interlingua_jax.models.sharding import param_shardings

SHARERS = ("source", "target")


def layer_map(setup: Setup) -> tuple[int | None, ...]:
  source, target = setup.models["source"].lm.config, setup.models["target"].lm.config
  return tuple(terminal_layer_map(source.num_layers, target.num_layers))


class KVFusionKind:
  name = "kv_fusion"
  section = "kv_fusion"
  rules = {
      "kv_fusion.hidden_size": at_least(1),
      "kv_fusion.gate_init": within(-20.0, 20.0),
      "kv_fusion.head_init": within(-20.0, 20.0),
      "kv_fusion.output_init_scale": above(0.0),
      "kv_fusion.gate_temperature_start": above(0.0),
      "kv_fusion.gate_temperature_end": above(0.0),
      "kv_fusion.anneal_steps": at_least(0),
      "kv_fusion.sharer": one_of(SHARERS),
  }
  methods = OWN_METHODS
  stages = {}
  added_keys = {}
  renamed_keys = {}

  def check(self, cfg: ml_collections.ConfigDict) -> None:
    if get(cfg, "data.chat_template"):
      fail("data.chat_template", True, "must be False for kv_fusion: both LMs read one text, and their tokens are "
           "aligned by its characters")
    if get(cfg, "kv_fusion.gate_temperature_end") > get(cfg, "kv_fusion.gate_temperature_start"):
      fail("kv_fusion.gate_temperature_end", cfg.kv_fusion.gate_temperature_end,
           f"must be <= kv_fusion.gate_temperature_start={cfg.kv_fusion.gate_temperature_start}: the gates anneal "
           "towards hard 0/1")

  def num_soft_tokens(self, cfg: ml_collections.ConfigDict) -> int:
    return 0

  def models(self, cfg: ml_collections.ConfigDict) -> dict[str, ModelSpec]:
    """The sharer (role "source": the source LM, or the target itself) and the target."""
    sharer = cfg[cfg.kv_fusion.sharer]
    return {"source": ModelSpec(sharer.path, sharer.dtype, f"{cfg.kv_fusion.sharer}.path"),
            "target": ModelSpec(cfg.target.path, cfg.target.dtype, "target.path")}

  def check_models(self, cfg: ml_collections.ConfigDict, files: dict[str, ModelFiles]) -> None:
    for role, f in files.items():
      if not getattr(f.tokenizer, "is_fast", False):
        fail(f"{role}.path", files[role].directory, "needs a fast tokenizer (character offsets) for kv_fusion's "
             "token alignment")

  def builders(self, cfg, files, exemplars) -> dict[None, pipeline.PromptBuilder]:
    d = cfg.data
    return {None: pipeline.PromptBuilder(d.dataset, exemplars, files["source"].tokenizer, files["target"].tokenizer,
                                         d.max_source_len, d.chat_template)}

  def new_module(self, run: Run, setup: Setup) -> nnx.List:
    k = run.cfg.kv_fusion
    return make_fusers(list(layer_map(setup)), setup.models["source"].lm.config, setup.models["target"].lm.config,
                       hidden_size=k.hidden_size, gate_init=k.gate_init, head_init=k.head_init,
                       output_init_scale=k.output_init_scale, rngs=nnx.Rngs(params=run.cfg.seed))

  def training(self, run: Run, setup: Setup) -> Training:
    cfg, k = run.cfg, run.cfg.kv_fusion
    source, target = setup.models["source"], setup.models["target"]
    encoded = rows.encode_pool(setup.train, builder=setup.builders[None], target_tokenizer=target.tokenizer,
                               anchor=cfg.data.answer_anchor, max_answer_len=cfg.data.max_answer_len)
    spec = LossSpec(source.lm.config, target.lm.config, layer_map(setup), seed=cfg.seed,
                    temperature_start=k.gate_temperature_start, temperature_end=k.gate_temperature_end,
                    anneal_steps=k.anneal_steps, remat=cfg.train.remat, attention_impl=cfg.model.attention_impl)
    loss = lambda module, frozen, batch, step: kv_fusion_loss(module, frozen, batch, step, spec=spec)
    shardings = (param_shardings(source.lm.config, setup.mesh), param_shardings(target.lm.config, setup.mesh))
    return Training(encoded, loss, (source.lm.params, target.lm.params), shardings, parts=rows.PARTS,
                    summary={"layer_map": list(spec.layer_map)})

  def contexts(self, run: Run, setup: Setup, module: tuple | None) -> dict[None, Context]:
    source, target, builder = setup.models["source"], setup.models["target"], setup.builders[None]
    frozen = Frozen(source.lm, source.tokenizer, target.lm, target.tokenizer, 0, source.stop_ids, target.stop_ids)
    bridge = None if module is None else FusionSource(
        module, source.lm, source.tokenizer, target.tokenizer, builder, layer_map(setup),
        tuple(run.cfg.eval.length_buckets), run.cfg.eval.control_seed)
    return {None: make_context(run, setup, frozen=frozen, builder=builder, num_soft_tokens=0, soft_source=None,
                               cache_source=bridge)}

  def method_contexts(self, run, setup, label, ctx) -> dict:
    return {}


KV_FUSION = KVFusionKind()
