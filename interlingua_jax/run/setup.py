"""Before any stage: the paths a run resolves (the toy worlds build their files), then preflight and the frozen
weights onto the mesh."""
import os

import jax
import ml_collections
from jax.experimental import multihost_utils
from orbax.checkpoint import multihost

from interlingua_jax.bridges.kind import Kind, Setup
from interlingua_jax.core import errors
from interlingua_jax.core.context import Paths, Run
from interlingua_jax.data import word_problems
from interlingua_jax.models.frozen import FrozenLM
from interlingua_jax.models.loading import load_model
from interlingua_jax.models.sharding import make_mesh
from interlingua_jax.run import preflight
from interlingua_jax.toy import extractive, world


def resolve_paths(cfg: ml_collections.ConfigDict, workdir: str, kind: Kind) -> Paths:
  """Each model's and data file's path: the config's, or where a toy world or the word-problem generator put
  them (built once, cached under `toy.cache_dir` or the workdir)."""
  specs = kind.models(cfg)
  models = {role: spec.path for role, spec in specs.items()}
  train, test = cfg.data.train_path, cfg.data.test_path
  if cfg.data.dataset == "toy":  # the toy world: its data and its two pretrained LMs
    built = world.prepare(cfg.toy.cache_dir or os.path.join(workdir, "toy"), **cfg.toy.world.to_dict())
    # each role gets the world's model its config key names (a kind may read the target in the source's role)
    models.update({role: built[spec.path_key.split(".")[0]] for role, spec in specs.items()
                   if spec.path_key in ("source.path", "target.path")})
    train, test = built["train"], built["test"]
  if "toy" in cfg and "extractive" in cfg.toy:  # SQuAD-format data and its tiny targets, named as in the config
    built = extractive.prepare(cfg.toy.cache_dir or os.path.join(workdir, "toy"), **cfg.toy.extractive.to_dict())
    models.update({role: built["targets"][role] for role in models if role in built["targets"]})
    if "source" in models:  # the world has no third model: a states encoder reads one of its own (`toy.source`)
      models["source"] = built["targets"][cfg.toy.source]
    train, test = built["train"], built["test"]
  if "word_problems" in cfg:  # generated GSM8K-format word problems (data/word_problems.py)
    built = word_problems.prepare(workdir, **cfg.word_problems.to_dict())
    train, test = built["train"], built["test"]
  return Paths(models, train, test)


def setup(run: Run, kind: Kind) -> Setup:
  """Preflight (config → tokenizers → data, no weight read), then the frozen weights onto the mesh."""
  cfg = run.cfg
  with errors.as_input_error(ValueError, RuntimeError):  # preflight's messages name the input and the fix
    checked = preflight.check(run, kind)
  mesh = make_mesh(cfg.mesh.data, cfg.mesh.model)
  if jax.process_count() > 1:
    # The first cross-process collective creates the CPU (gloo) communicators, which give up after a fixed
    # 30 s; processes that finished preflight far apart (a loaded host) would fail there. This barrier goes
    # through the coordination service (no collective, 10 min timeout), so they arrive together, and the
    # one-element collective right after it creates the communicators then, before either process spends
    # unequal time reading and casting weights.
    multihost.get_barrier_sync_fn()(key="interlingua_jax:before-weights", timeout_ms=600_000)
    multihost_utils.sync_global_devices("interlingua_jax:communicators")
  specs = kind.models(cfg)
  models = {role: FrozenLM(load_model(files.directory, dtype=specs[role].dtype, mesh=mesh,
                                      attention_impl=cfg.model.attention_impl), files.tokenizer, files.stop_ids)
            for role, files in checked.files.items()}
  sp = checked.splits
  return Setup(models, checked.builders, mesh, train=list(sp.train), validation=list(sp.validation),
               test=list(sp.test), splits=sp.summary(), skipped=checked.skipped)
