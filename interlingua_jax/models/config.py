"""Decoder configuration shared by every family, read from and written to HF `config.json`."""
import dataclasses
from typing import Any

from interlingua_jax.core.errors import UserError
from interlingua_jax.models.families import FAMILIES, Family

SUPPORTED_MODEL_TYPES = tuple(FAMILIES)


class CheckpointError(UserError, ValueError):
  """A checkpoint or its config cannot be used; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Everything the decoder needs; hashable so jitted functions can take it as a static argument."""
  model_type: str
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rms_norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  rope_scaling: tuple[tuple[str, Any], ...] | None = None  # sorted dict items, so the config stays hashable
  sliding_window: int | None = None
  tie_word_embeddings: bool = False
  bos_token_id: int | None = 1
  eos_token_id: tuple[int, ...] = (2,)
  pad_token_id: int | None = None
  max_position_embeddings: int = 4096

  def __post_init__(self):
    if self.model_type not in SUPPORTED_MODEL_TYPES:
      raise CheckpointError(f"model_type {self.model_type!r} is not supported; use one of {SUPPORTED_MODEL_TYPES}.")
    if self.num_heads % self.num_kv_heads:
      raise CheckpointError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}.")
    if isinstance(self.rope_scaling, dict):
      object.__setattr__(self, "rope_scaling", tuple(sorted(self.rope_scaling.items())))
    if isinstance(self.eos_token_id, int):
      object.__setattr__(self, "eos_token_id", (self.eos_token_id,))
    object.__setattr__(self, "eos_token_id", tuple(int(e) for e in self.eos_token_id))
    if self.rope_scaling is not None:
      kind = dict(self.rope_scaling).get("rope_type")
      if kind != "llama3":
        raise CheckpointError(f"rope_scaling type {kind!r} is not supported; only 'llama3' (or no scaling) is.")

  @property
  def family(self) -> Family:
    return FAMILIES[self.model_type]

  @property
  def rope_scaling_dict(self) -> dict[str, Any] | None:
    return None if self.rope_scaling is None else dict(self.rope_scaling)

  @classmethod
  def from_hf(cls, hf: dict[str, Any], *, source: str = "config.json") -> "DecoderConfig":
    """Reads both the transformers<5 layout (`rope_theta`, `rope_scaling`) and the 5.x one (`rope_parameters`)."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
      raise CheckpointError(f"{source}: model_type {model_type!r} is not supported; "
                            f"this loader handles {SUPPORTED_MODEL_TYPES} only.")
    family = FAMILIES[model_type]
    for key, assumed in family.assumes:
      if bool(hf.get(key) or False) != assumed:  # null reads as false, as transformers does
        raise CheckpointError(f"{source}: {key}={hf[key]!r} is not supported for model_type {model_type!r}; "
                              f"this port assumes {key}={assumed!r}, as the released checkpoints have.")
    if hf.get("hidden_act", "silu") != "silu":
      raise CheckpointError(f"{source}: hidden_act {hf['hidden_act']!r} is not supported; only 'silu'.")
    try:
      rope = dict(hf.get("rope_parameters") or {})
      rope_theta = float(rope.pop("rope_theta", hf.get("rope_theta", 10000.0)))
      if hf.get("rope_scaling"):
        rope.update(hf["rope_scaling"])
      if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope.pop("type")
      rope_scaling = rope if rope.get("rope_type", "default") != "default" else None
      if rope_scaling is not None:
        for key in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
          if key not in rope_scaling:
            raise CheckpointError(f"{source}: rope_scaling is missing {key!r}.")
      num_heads = int(hf["num_attention_heads"])
      hidden = int(hf["hidden_size"])
      eos = hf.get("eos_token_id", 2)
      eos = (eos,) if isinstance(eos, int) else tuple(eos or ())
      window = hf.get("sliding_window") if family.sliding_window else None
      return cls(
          model_type=model_type,
          vocab_size=int(hf["vocab_size"]),
          hidden_size=hidden,
          intermediate_size=int(hf["intermediate_size"]),
          num_layers=int(hf["num_hidden_layers"]),
          num_heads=num_heads,
          num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
          head_dim=int(hf.get("head_dim") or hidden // num_heads),
          rms_norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
          rope_theta=rope_theta,
          rope_scaling=rope_scaling,
          sliding_window=None if window is None else int(window),
          tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
          bos_token_id=hf.get("bos_token_id"),
          eos_token_id=eos,
          pad_token_id=hf.get("pad_token_id"),
          max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
      )
    except KeyError as e:
      raise CheckpointError(f"{source}: required field {e.args[0]!r} is missing.") from None

  def to_hf(self) -> dict[str, Any]:
    """A config.json in the transformers<5 layout, which every transformers version reads."""
    hf = {
        "architectures": [self.family.architecture],
        "model_type": self.model_type,
        "vocab_size": self.vocab_size,
        "hidden_size": self.hidden_size,
        "intermediate_size": self.intermediate_size,
        "num_hidden_layers": self.num_layers,
        "num_attention_heads": self.num_heads,
        "num_key_value_heads": self.num_kv_heads,
        "head_dim": self.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": self.rms_norm_eps,
        "rope_theta": self.rope_theta,
        "rope_scaling": self.rope_scaling_dict,
        "tie_word_embeddings": self.tie_word_embeddings,
        "bos_token_id": self.bos_token_id,
        "eos_token_id": self.eos_token_id[0] if len(self.eos_token_id) == 1 else list(self.eos_token_id),
        "pad_token_id": self.pad_token_id,
        "max_position_embeddings": self.max_position_embeddings,
        **dict(self.family.assumes),
    }
    if self.family.sliding_window:
      hf["sliding_window"] = self.sliding_window
    return hf


@dataclasses.dataclass(frozen=True)
class ParamSpec:
  """Shape, logical axes (one name or None per dim) and initialiser of one parameter; a pytree leaf."""
  shape: tuple[int, ...]
  axes: tuple[str | None, ...]
  init: str = "normal"  # "normal" (std 0.02, as HF's initializer_range) or "ones" (norm scales)


def param_layout(config: DecoderConfig) -> dict[str, Any]:
  """The parameter pytree described abstractly; layer weights are stacked on a leading layer axis.

  Projections keep their head axes ((d, heads, head_dim) rather than (d, heads*head_dim)) so that the
  "heads" axis can be sharded over the mesh's "model" axis without reshapes; so do the q/k/v biases. The
  family adds its optional tensors (see `families.py`).
  """
  c = config
  L, d, f = c.num_layers, c.hidden_size, c.intermediate_size
  layout = {
      "embed": ParamSpec((c.vocab_size, d), (None, "embed")),
      "layers": {
          "attn_norm": ParamSpec((L, d), ("layers", None), "ones"),
          "q": ParamSpec((L, d, c.num_heads, c.head_dim), ("layers", None, "heads", None)),
          "k": ParamSpec((L, d, c.num_kv_heads, c.head_dim), ("layers", None, "kv_heads", None)),
          "v": ParamSpec((L, d, c.num_kv_heads, c.head_dim), ("layers", None, "kv_heads", None)),
          "o": ParamSpec((L, c.num_heads, c.head_dim, d), ("layers", "heads", None, None)),
          "mlp_norm": ParamSpec((L, d), ("layers", None), "ones"),
          "gate": ParamSpec((L, d, f), ("layers", None, "mlp")),
          "up": ParamSpec((L, d, f), ("layers", None, "mlp")),
          "down": ParamSpec((L, f, d), ("layers", "mlp", None)),
      },
      "final_norm": ParamSpec((d,), (None,), "ones"),
  }
  layers = layout["layers"]
  if c.family.qkv_bias:
    layers["q_bias"] = ParamSpec((L, c.num_heads, c.head_dim), ("layers", "heads", None))
    layers["k_bias"] = ParamSpec((L, c.num_kv_heads, c.head_dim), ("layers", "kv_heads", None))
    layers["v_bias"] = ParamSpec((L, c.num_kv_heads, c.head_dim), ("layers", "kv_heads", None))
  if c.family.qk_norm:
    layers["q_norm"] = ParamSpec((L, c.head_dim), ("layers", None), "ones")
    layers["k_norm"] = ParamSpec((L, c.head_dim), ("layers", None), "ones")
  if not c.tie_word_embeddings:
    layout["lm_head"] = ParamSpec((d, c.vocab_size), (None, "vocab"))
  return layout
