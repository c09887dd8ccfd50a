"""The PCA baseline of a latent kind, per target: M soft tokens that are a *linear* compression of the text.

For target t, the token embeddings of the encoder's text (`batches.reading_text`, cut to `max_len` target
tokens) are projected to M vectors by a PCA over the sequence axis (`interlingua.pca`), fitted on the first
`interlingua.pca_fit_texts` training texts, then scaled to the target's embedding RMS and read by t exactly as
`latent`'s soft tokens are (method `pca`). Beating it is what says a non-linear encoder is needed.
"""
import dataclasses
import logging

import jax.numpy as jnp
import numpy as np

from interlingua_jax.data import pipeline
from interlingua_jax.bridges.interlingua import batches, pca


@dataclasses.dataclass(frozen=True)
class PcaSource:
  """`SoftSource` of a fitted projection: target token ids of the text in, M projected vectors out."""
  projection: pca.Projection
  table: np.ndarray  # the target's (vocab, d_model) embedding table
  tokenizer: object
  target_rms: float
  fit_texts: int  # how many training texts the projection was fitted on

  def text(self, example) -> str:
    return batches.reading_text(example)

  def summary(self) -> dict:
    """What the aggregate records of the projection (under the method's name)."""
    return {"explained_variance": float(self.projection.explained_variance_ratio.sum()),
            "max_len": self.projection.max_len, "fit_texts": self.fit_texts}

  def ids(self, example) -> list[int]:
    return pipeline.token_ids(self.tokenizer, batches.reading_text(example))[:self.projection.max_len]

  def soft(self, rows: list[list[int]]):
    return jnp.asarray(np.stack([pca.project(self.projection, self.table[row], self.target_rms)
                                 for row in rows]).astype(np.float32))


def fit_source(examples: list, tokenizer, embed_table, *, num_components: int, max_len: int,
               target_rms: float) -> PcaSource:
  """The projection fitted on `examples`' texts (each cut to at most max_len target tokens)."""
  table = np.asarray(embed_table, np.float32)
  rows = [pipeline.token_ids(tokenizer, batches.reading_text(e))[:max_len] for e in examples]
  width = max(num_components, max(map(len, rows)))
  projection = pca.fit((table[r] for r in rows), num_components, width)
  logging.info("PCA fitted on %d texts (<= %d tokens): explained variance %.4f", len(rows), width,
               float(projection.explained_variance_ratio.sum()))
  return PcaSource(projection, table, tokenizer, target_rms, len(rows))
