"""The PCA baseline: a linear compression of a text's token embeddings to M slots, fitted on training texts.

A text's target token embeddings X (T × d_model) are zero-padded to T_max rows. Every embedding dimension of
every training text is one sample of a T_max-vector (a column of the padded X), so the PCA runs over the
*sequence* axis: its top-M principal directions U (T_max × M) and mean μ (T_max) give the soft tokens
Uᵀ(X − μ1ᵀ), M vectors of width d_model that the target reads in place of the text. If learned soft tokens
do not beat this, a non-linear encoder is not needed (issue 13: the PCA baseline).

The fit accumulates the T_max × T_max scatter matrix text by text (memory T_max², not N·d_model·T_max) and
takes its eigenvectors; each direction's sign is fixed (largest entry positive) so that a fit is reproducible.
Texts longer than T_max are refused: truncate them explicitly before fitting or projecting.
"""
import dataclasses
from collections.abc import Iterable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Projection:
  """components (T_max, M) orthonormal columns; mean (T_max,); explained_variance_ratio (M,), decreasing,
  each direction's share of the total variance (their sum reaches 1 at M = T_max)."""
  components: np.ndarray
  mean: np.ndarray
  explained_variance_ratio: np.ndarray

  @property
  def max_len(self) -> int:
    return self.components.shape[0]

  @property
  def num_components(self) -> int:
    return self.components.shape[1]


def pad(embeddings: np.ndarray, max_len: int) -> np.ndarray:
  """(T, d) -> (max_len, d) float64, zeros after the text; a text longer than max_len is refused."""
  x = np.asarray(embeddings, np.float64)
  if x.ndim != 2:
    raise ValueError(f"embeddings must be (tokens, d_model), got shape {x.shape}")
  if x.shape[0] > max_len:
    raise ValueError(f"a text of {x.shape[0]} tokens is longer than the PCA's max_len={max_len}; truncate it "
                     "first or fit with a larger max_len")
  return np.pad(x, ((0, max_len - x.shape[0]), (0, 0)))


def fit(embeddings_list: Iterable[np.ndarray], num_components: int, max_len: int) -> Projection:
  """The top `num_components` directions over the sequence axis of the (zero-padded) training texts."""
  if not 1 <= num_components <= max_len:
    raise ValueError(f"num_components must be in 1..max_len={max_len}, got {num_components}")
  scatter, total, count = np.zeros((max_len, max_len)), np.zeros(max_len), 0
  for embeddings in embeddings_list:
    x = pad(embeddings, max_len)
    scatter += x @ x.T
    total += x.sum(axis=1)
    count += x.shape[1]  # one sample per embedding dimension
  if not count:
    raise ValueError("fit needs at least one training text")
  mean = total / count
  covariance = scatter / count - np.outer(mean, mean)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  eigenvalues, eigenvectors = np.clip(eigenvalues[::-1], 0.0, None), eigenvectors[:, ::-1]
  top = eigenvectors[:, :num_components]
  top = top * np.where(top[np.abs(top).argmax(axis=0), np.arange(num_components)] < 0, -1.0, 1.0)
  ratio = eigenvalues[:num_components] / eigenvalues.sum() if eigenvalues.sum() > 0 else np.zeros(num_components)
  return Projection(components=top, mean=mean, explained_variance_ratio=ratio)


def project(projection: Projection, embeddings: np.ndarray, target_rms: float | None = None) -> np.ndarray:
  """(T, d) token embeddings -> (M, d) soft tokens Uᵀ(X − μ1ᵀ); with `target_rms`, each soft token is scaled to
  that RMS (the target's text-embedding RMS), since PCA coordinates have the scale of the variance they keep."""
  x = pad(embeddings, projection.max_len)
  soft = projection.components.T @ (x - projection.mean[:, None])
  if target_rms is not None:
    rms = np.sqrt(np.mean(soft ** 2, axis=1, keepdims=True))
    soft = soft * (target_rms / np.maximum(rms, 1e-12))
  return soft
