"""The PCA baseline's math (interlingua/pca.py) against an explicit SVD of the sample matrix it describes."""
import numpy as np
import pytest

from interlingua_jax.bridges.interlingua import pca

T_MAX, D = 6, 5


def _texts(seed: int = 0, n: int = 7) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  scale = np.linspace(3.0, 0.5, T_MAX)[:, None]  # distinct variances per position, so directions are unique
  return [rng.normal(size=(t, D)) * scale[:t] + 0.3 for t in rng.integers(2, T_MAX + 1, n)]


def _samples(texts) -> np.ndarray:
  """Every embedding dimension of every zero-padded text as one T_max-vector: (N·d, T_max)."""
  return np.concatenate([np.pad(x, ((0, T_MAX - len(x)), (0, 0))).T for x in texts])


def test_fit_matches_the_svd_of_the_sample_matrix():
  texts = _texts()
  samples = _samples(texts)
  centred = samples - samples.mean(axis=0)
  _, singular, vt = np.linalg.svd(centred, full_matrices=False)
  for m in (1, 3, T_MAX):
    projection = pca.fit(iter(texts), m, T_MAX)  # a generator is enough: the fit streams
    np.testing.assert_allclose(projection.mean, samples.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(np.abs(projection.components.T @ vt[:m].T), np.eye(m), atol=1e-8)  # same up to sign
    np.testing.assert_allclose(projection.explained_variance_ratio, (singular ** 2 / (singular ** 2).sum())[:m],
                               atol=1e-10)
  np.testing.assert_allclose(projection.components.T @ projection.components, np.eye(T_MAX), atol=1e-10)


def test_explained_variance_rises_with_m_and_reaches_one_at_t_max():
  texts = _texts(1, n=20)
  totals = [pca.fit(texts, m, T_MAX).explained_variance_ratio.sum() for m in range(1, T_MAX + 1)]
  assert all(a < b for a, b in zip(totals, totals[1:]))
  assert totals[-1] == pytest.approx(1.0, abs=1e-12) and totals[0] < 0.9


def test_project_is_u_transpose_times_the_centred_text_and_inverts_at_t_max():
  texts = _texts(2)
  x = texts[0]
  projection = pca.fit(texts, 3, T_MAX)
  padded = np.pad(x, ((0, T_MAX - len(x)), (0, 0)))
  soft = pca.project(projection, x)
  assert soft.shape == (3, D)
  expected = np.einsum("tm,td->md", projection.components, padded - projection.mean[:, None])
  np.testing.assert_allclose(soft, expected, atol=1e-12)
  full = pca.fit(texts, T_MAX, T_MAX)  # all directions: the projection loses nothing
  np.testing.assert_allclose(full.components @ pca.project(full, x) + full.mean[:, None], padded, atol=1e-10)
  rescaled = pca.project(projection, x, target_rms=0.02)
  np.testing.assert_allclose(np.sqrt(np.mean(rescaled ** 2, axis=1)), 0.02, rtol=1e-10)
  np.testing.assert_allclose(rescaled / np.linalg.norm(rescaled, axis=1, keepdims=True),
                             soft / np.linalg.norm(soft, axis=1, keepdims=True), atol=1e-12)  # only the scale changes
  assert np.array_equal(pca.fit(texts, 3, T_MAX).components, projection.components)  # reproducible, signs fixed


def test_bad_input_is_one_clear_error():
  texts = _texts()
  with pytest.raises(ValueError, match="longer than the PCA's max_len=3; truncate it"):
    pca.fit([np.ones((4, D))], 2, 3)
  with pytest.raises(ValueError, match=r"num_components must be in 1..max_len=6, got 7"):
    pca.fit(texts, 7, T_MAX)
  with pytest.raises(ValueError, match="at least one training text"):
    pca.fit([], 2, T_MAX)
  with pytest.raises(ValueError, match=r"must be \(tokens, d_model\)"):
    pca.project(pca.fit(texts, 2, T_MAX), np.ones(D))
