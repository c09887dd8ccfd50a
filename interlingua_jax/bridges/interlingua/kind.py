"""`bridge.kind = "interlingua"`: text → `SharedInterlingua` → one Z → an adapter per target of
`interlingua.targets`; the loss is the sum over targets of `target_loss`. One evaluation view per target.

The encoder reads UTF-8 bytes, or (interlingua.encoder = "states") the hidden states of a frozen source LM.
The targets read no exemplars (data.num_shots = 0). Its own methods: `token_budget_text` and `pca`
(methods.py); its own stage: `--mode=diagnostics` (diagnostics.py).
"""
import dataclasses
import logging

import jax
import ml_collections
from flax import nnx

from interlingua_jax.bridges.interlingua import batches, baselines, diagnostics
from interlingua_jax.bridges.interlingua.encoder import ByteEncoder
from interlingua_jax.bridges.interlingua.methods import OWN_METHODS
from interlingua_jax.bridges.interlingua.shared import FrozenSource, SharedInterlingua, encoder_inputs, target_loss
from interlingua_jax.bridges.interlingua.states_encoder import StatesEncoder
from interlingua_jax.bridges.kind import ModelSpec, Setup, Training, make_context
from interlingua_jax.core.context import Run
from interlingua_jax.core.rules import DTYPES, at_least, fail, flag, get, one_of, text
from interlingua_jax.data import pipeline
from interlingua_jax.evaluation.context import Context
from interlingua_jax.models.frozen import Frozen, ModelFiles, resolve_layer
from interlingua_jax.models.sharding import param_shardings
from interlingua_jax.nn.blocks import embedding_rms
from interlingua_jax.toy.extractive import TARGETS as TOY_TARGETS
from interlingua_jax.training.state import merge_module

TARGET_FIELDS = ("name", "path", "dtype", "tokenizer")
WIDTH_STEP = 64  # evaluation pads the encoder's rows to a multiple of this


@dataclasses.dataclass(frozen=True)
class LatentSource:
  """`SoftSource` of a trained interlingua for one target: encoder ids in, that target's soft tokens out."""
  module: tuple  # (graphdef, params, rest) as `TrainState` holds them
  target: str
  reader: batches.Reader
  source: FrozenSource | None = None  # the states encoder's frozen source, and its params
  source_params: object = None

  def text(self, example) -> str:
    return batches.reading_text(example)

  def ids(self, example) -> list[int]:
    return self.reader.ids(example)

  def soft(self, rows: list[list[int]]) -> jax.Array:
    # Padded to a multiple of WIDTH_STEP, not to max_len: a 7B source reading 2,048 positions for a 200-token
    # context would spend 10x the work; at most max_len / WIDTH_STEP programs compile.
    width = min(self.reader.max_len, -(-max(map(len, rows)) // WIDTH_STEP) * WIDTH_STEP)
    ids, mask = self.reader.pad(rows, width)
    graphdef, params, rest = self.module
    return soft_tokens_jit(graphdef, params, rest, self.source_params, ids, mask, self.target, self.source)


def soft_tokens(graphdef, params, rest, source_params, ids, mask, name: str, source: FrozenSource | None):
  """Target `name`'s soft tokens (B, M, d_model) of right-padded encoder ids."""
  return merge_module(graphdef, params, rest)(encoder_inputs(source, source_params, ids, mask), mask)[name]


soft_tokens_jit = jax.jit(soft_tokens, static_argnames=("graphdef", "name", "source"))


class InterlinguaKind:
  name = "interlingua"
  section = "interlingua"
  rules = {
      "interlingua.encoder": one_of(("bytes", "states")),
      "interlingua.latent_dim": at_least(2),
      "interlingua.num_soft_tokens": at_least(1),
      "interlingua.depth": at_least(1),
      "interlingua.num_heads": at_least(1),
      "interlingua.max_bytes": at_least(1),
      "interlingua.calibrate_rms": flag,
      "interlingua.first_token_weight": at_least(0.0, integer=False),
      "interlingua.k_tokens": at_least(1),
      "interlingua.pca_fit_texts": at_least(1),
  }
  methods = OWN_METHODS
  stages = {"diagnostics": diagnostics.diagnose}
  added_keys = {}
  renamed_keys = {"interlingua.num_latents": "interlingua.num_soft_tokens"}  # M has one name in every kind

  def check(self, cfg: ml_collections.ConfigDict) -> None:
    """The relations of the interlingua section and its list of targets, one entry at a time."""
    g = lambda key: get(cfg, key)
    if g("interlingua.latent_dim") % (2 * g("interlingua.num_heads")):
      fail("interlingua.latent_dim", g("interlingua.latent_dim"),
           f"must be even and divisible by interlingua.num_heads={g('interlingua.num_heads')}")
    if g("data.num_shots"):
      fail("data.num_shots", g("data.num_shots"), "must be 0: the interlingua's targets read no exemplars")
    targets = g("interlingua.targets")
    if not isinstance(targets, (tuple, list)) or not targets:
      fail("interlingua.targets", targets, "must be a non-empty list of {name, path, dtype, tokenizer} entries")
    toy = _extractive_toy(cfg)  # the toy world sets the paths of its targets
    names = []
    for i, t in enumerate(targets):
      key = f"interlingua.targets[{i}]"
      if not hasattr(t, "keys") or set(t.keys()) != set(TARGET_FIELDS):
        fail(key, t, f"must have exactly the fields {', '.join(TARGET_FIELDS)}")
      for field, rule in (("name", text), ("path", (lambda v: None) if toy else text), ("dtype", one_of(DTYPES))):
        if rule(t[field]):
          fail(f"{key}.{field}", t[field], rule(t[field]))
      if not isinstance(t["tokenizer"], str):
        fail(f"{key}.tokenizer", t["tokenizer"], "must be a string ('' = the checkpoint's tokenizer)")
      if t["name"] in names or "/" in t["name"] or t["name"] == "source":
        fail(f"{key}.name", t["name"], "must be unique among the targets, not 'source', and hold no '/'")
      names.append(t["name"])
    states = g("interlingua.encoder") == "states"
    if toy:  # a states encoder's source is one of the extractive world's own models, named by `toy.source`
      source = cfg.toy.get("source", "")
      if states and source not in TOY_TARGETS:
        fail("toy.source", source, f"must name the toy model whose states the encoder reads, one of "
             f"{', '.join(TOY_TARGETS)}")
      if source and not states:
        fail("toy.source", source, "is read by interlingua.encoder='states' only; set it to '' for the byte encoder")

  def num_soft_tokens(self, cfg: ml_collections.ConfigDict) -> int:
    return cfg.interlingua.num_soft_tokens

  def models(self, cfg: ml_collections.ConfigDict) -> dict[str, ModelSpec]:
    """The states encoder's source (if any), then the targets in config order."""
    out = {}
    if cfg.interlingua.encoder == "states":
      out["source"] = ModelSpec(cfg.source.path, cfg.source.dtype, "source.path")
    for i, t in enumerate(cfg.interlingua.targets):
      out[t["name"]] = ModelSpec(t["path"], t["dtype"], f"interlingua.targets[{i}].path", t["tokenizer"])
    return out

  def check_models(self, cfg: ml_collections.ConfigDict, files: dict[str, ModelFiles]) -> None:
    if "source" in files:
      resolve_layer(cfg.source.layer, files["source"].config.num_layers)

  def builders(self, cfg, files, exemplars) -> dict[str, pipeline.PromptBuilder]:
    """Each target's text prompt (target_alone), fitted to data.max_source_len of its own tokens."""
    d = cfg.data
    return {t["name"]: pipeline.PromptBuilder(d.dataset, (), files[t["name"]].tokenizer, files[t["name"]].tokenizer,
                                              d.max_source_len, d.chat_template) for t in cfg.interlingua.targets}

  def new_module(self, run: Run, setup: Setup) -> SharedInterlingua:
    """Byte encoder (or the frozen source's states, projected to d_z) -> M latent queries -> Z -> an adapter per
    target."""
    c, targets = run.cfg.interlingua, _targets(setup)
    rngs = nnx.Rngs(params=run.cfg.seed)
    if c.encoder == "states":
      encoder = StatesEncoder(source_dim=setup.models["source"].lm.config.hidden_size, dim=c.latent_dim, rngs=rngs)
    else:
      encoder = ByteEncoder(dim=c.latent_dim, depth=c.depth, num_heads=c.num_heads, max_len=c.max_bytes, rngs=rngs)
    rms = {name: embedding_rms(t.lm.params["embed"]) for name, t in targets.items()}
    return SharedInterlingua(encoder=encoder, target_dims={n: t.lm.config.hidden_size for n, t in targets.items()},
                             num_soft_tokens=c.num_soft_tokens, latent_dim=c.latent_dim, num_heads=c.num_heads,
                             target_embed_rms=rms if c.calibrate_rms else None, rngs=rngs)

  def training(self, run: Run, setup: Setup) -> Training:
    cfg, c, targets = run.cfg, run.cfg.interlingua, _targets(setup)
    tokenizers = {name: t.tokenizer for name, t in targets.items()}
    spec = batches.row_spec(setup.train, tokenizers, num_soft_tokens=c.num_soft_tokens, k_tokens=c.k_tokens,
                            anchor=cfg.data.answer_anchor, reader=reader(run, setup))
    encoded = [batches.encode_example(e, tokenizers, spec) for e in setup.train]
    source, source_params = frozen_source(run, setup)
    configs = {name: t.lm.config for name, t in targets.items()}

    def loss(module, frozen_params, batch, step):
      """Σ_t target_loss_t, and per target its terms as `<name>/<term>` metrics."""
      source_params_, target_params = frozen_params
      mask = batch[batches.ENCODER_MASK]
      soft = module(encoder_inputs(source, source_params_, batch[batches.ENCODER_IDS], mask), mask)
      total, metrics = 0.0, {}
      for name, config in configs.items():
        value, terms = target_loss(soft[name], target_params[name], config, batches.target_batch(batch, name),
                                   k=c.k_tokens, first_token_weight=c.first_token_weight, remat=cfg.train.remat,
                                   attention_impl=cfg.model.attention_impl)
        total = total + value
        metrics.update({f"{name}/loss": value, **{f"{name}/{k}": v for k, v in terms.items()}})
      return total, metrics

    source_shardings = None if source is None else param_shardings(source.config, setup.mesh)
    shardings = (source_shardings, {name: param_shardings(config, setup.mesh) for name, config in configs.items()})
    return Training(encoded, loss, (source_params, {n: t.lm.params for n, t in targets.items()}), shardings,
                    parts=batches.PARTS)

  def contexts(self, run: Run, setup: Setup, module: tuple | None) -> dict[str, Context]:
    """Each target's view; its records are labelled with the target's name."""
    out = {}
    for name, t in _targets(setup).items():
      frozen = Frozen(None, None, t.lm, t.tokenizer, 0, (), t.stop_ids)
      soft = None if module is None else LatentSource(module, name, reader(run, setup), *frozen_source(run, setup))
      out[name] = make_context(run, setup, frozen=frozen, builder=setup.builders[name],
                               num_soft_tokens=run.cfg.interlingua.num_soft_tokens, soft_source=soft,
                               labels=(("target", name),))
    return out

  def method_contexts(self, run: Run, setup: Setup, label: str, ctx: Context) -> dict[str, Context]:
    """`pca`: the target's own linear compression of the text, fitted on the first training texts."""
    if "pca" not in run.cfg.eval.methods:
      return {}
    c, embed = run.cfg.interlingua, setup.models[label].lm.params["embed"]
    source = baselines.fit_source(setup.train[:c.pca_fit_texts], ctx.frozen.target_tokenizer, embed,
                                  num_components=c.num_soft_tokens, max_len=run.cfg.data.max_source_len,
                                  target_rms=embedding_rms(embed))
    return {"pca": dataclasses.replace(ctx, soft_source=source)}


def _extractive_toy(cfg: ml_collections.ConfigDict) -> bool:
  return "toy" in cfg and "extractive" in cfg.toy


def _targets(setup: Setup) -> dict:
  """The loaded targets in config order (every model but the states encoder's source)."""
  return {name: m for name, m in setup.models.items() if name != "source"}


def reader(run: Run, setup: Setup) -> batches.Reader:
  """Bytes up to interlingua.max_bytes, or the source's tokens up to data.max_source_len (states encoder)."""
  if "source" not in setup.models:
    return batches.Reader(run.cfg.interlingua.max_bytes)
  return batches.Reader(run.cfg.data.max_source_len, setup.models["source"].tokenizer)


def frozen_source(run: Run, setup: Setup) -> tuple[FrozenSource | None, object]:
  """The states encoder's source (static) and its params; (None, None) for the byte encoder."""
  if "source" not in setup.models:
    return None, None
  lm = setup.models["source"].lm
  return FrozenSource(lm.config, resolve_layer(run.cfg.source.layer, lm.config.num_layers),
                      run.cfg.model.attention_impl), lm.params


INTERLINGUA = InterlinguaKind()
