"""The evaluation methods only a cache bridge runs (`Kind.methods`; the run refuses them for other kinds): `latent`
with its source cache destroyed, or with no fusion at all (source.py's variants).

  latent_gates_off  every gate closed: the target's own cache through the fusion code path (= target_alone)
  latent_zeroed     the source cache zeroed
  latent_noise      the source cache replaced by noise of its per-layer statistics (the attenuation control)

With the shared bridge controls (`latent_shuffled`, the probes) they tell signal from perturbation: a fused cache
that helps because it carries this question's source states beats all of them; one that helps by perturbing the
target does as well with noise.
"""
from interlingua_jax.evaluation.methods import Method, anchor, register

for name, variant in (("latent_gates_off", "gates_off"), ("latent_zeroed", "zeroed"), ("latent_noise", "noise")):
  register(Method(name, "target", anchor, soft_from=lambda q: q.example, control=True, variant=variant))
OWN_METHODS = ("latent_gates_off", "latent_zeroed", "latent_noise")
