"""The translator's training loss.

    h_src = source_L(question)                 frozen, outside the gradient; read from the batch when cached
    soft  = translator(h_src)                  the only trainable parameters (float32 master)
    loss  = CE(target([BOS][soft][anchor][answer][EOS]))  on answer + EOS only
          + λ · 1[step ≥ start] · InfoNCE(mean(soft), mean(target_embed(question)))
"""
import dataclasses

import jax
import jax.numpy as jnp

from interlingua_jax.data import layout, pipeline
from interlingua_jax.models import DecoderConfig, embed, forward, lm_head
from interlingua_jax.models.frozen import source_states
from interlingua_jax.nn import losses


@dataclasses.dataclass(frozen=True)
class LossSpec:
  source_config: DecoderConfig
  target_config: DecoderConfig
  layer: int  # the source's hidden state read (HF index)
  infonce_weight: float
  infonce_start_step: int
  temperature: float
  answer_window: int  # the last positions of a row that can hold answer tokens or the EOS
  remat: bool = False  # recompute the target's layers in the backward pass (memory for time)
  attention_impl: str | None = None  # model.attention_impl, for both frozen models


def translator_loss(translator, frozen_params, batch, step: jax.Array, *, spec: LossSpec):
  """(loss, metrics) of one batch; frozen_params: (source params, target params)."""
  source_params, target_params = frozen_params
  hidden = batch.get(pipeline.SOURCE_STATES)  # cached (source_cache): the same states, without the source forward
  if hidden is None:
    hidden = source_states(source_params, spec.source_config, batch["source_ids"], batch["source_mask"], spec.layer,
                           spec.attention_impl)
  soft = translator(hidden, batch["source_mask"], deterministic=False)
  inputs = layout.target_inputs(target_params, spec.target_config, soft, batch["target_token_ids"],
                                batch["target_soft_index"])
  out = forward(target_params, spec.target_config, inputs_embeds=inputs, attention_mask=batch["target_attention_mask"],
                positions=batch["target_positions"], compute_logits=False, output_hidden_states=False,
                remat=spec.remat, attention_impl=spec.attention_impl)
  # Logits only where answers live (the rows are left-padded, so answers end every row): a (B, S, V)
  # float32 logit tensor for a 128k vocabulary would dominate memory for nothing.
  window = slice(-spec.answer_window, None)
  logits = lm_head(target_params, spec.target_config, out.hidden_states[-1][:, window])
  labels, mask = batch["target_labels"][:, window], batch["target_loss_mask"][:, window]
  ce = losses.answer_cross_entropy(logits, labels, mask)
  metrics = {"ce": ce, "token_accuracy": losses.answer_accuracy(logits, labels, mask),
             **losses.collapse_diagnostics(soft)}
  loss = ce
  if spec.infonce_weight > 0:
    anchors = losses.mean_pool(soft)
    positives = losses.mean_pool(embed(target_params, spec.target_config, batch["question_ids"]),
                                 batch["question_mask"])
    nce = losses.info_nce(anchors, positives, spec.temperature)
    on = (step >= spec.infonce_start_step).astype(jnp.float32)
    loss = loss + spec.infonce_weight * on * nce
    metrics["infonce"] = nce
  return loss, metrics
