"""The evaluation methods only the interlingua runs (`Kind.methods`; the run refuses them for other kinds):

  token_budget_text  as token_budget, but the first M target tokens of what the encoder reads (question, then
                     context: `batches.reading_text`): the interlingua's token budget.
  pca                [BOS][M soft tokens][anchor] → target, the soft tokens a linear (PCA) compression of the same
                     text's token embeddings (baselines.py): what needs no learned encoder.
"""
from interlingua_jax.bridges.interlingua.batches import reading_text
from interlingua_jax.evaluation.methods import Method, anchor, budget, register

register(Method("token_budget_text", "target", budget(lambda ctx, e: reading_text(e))))
register(Method("pca", "target", anchor, soft_from=lambda q: q.example))
OWN_METHODS = ("token_budget_text", "pca")
