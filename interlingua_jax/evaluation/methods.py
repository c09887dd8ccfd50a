"""The evaluation methods: a registry of small frozen objects, in the spirit of big_vision's evaluators.

A method declares which model answers and how that model's input is built from a question;
methods that read soft tokens also declare which question the bridge reads. The
harness does the rest identically for every method: batching, generation, scoring
from the generated text alone, records. A new method is one `register(Method(...))` and one
entry in `eval.methods`.

Built-in methods (`M` = the bridge's number of soft tokens; a bridge kind registers the methods only it can
run in its own package):
  source_alone         the source LM answers the full prompt.
  target_alone         the target LM answers the full prompt.
  latent               [BOS][M soft tokens of this question][anchor] → target.
  token_budget         [BOS][first M target tokens of the question text][anchor] → target: the bridge's
                       budget spent on plain text (instruction and exemplars excluded).
  token_budget_prompt  as token_budget, but the first M tokens of the zero-shot prompt (instruction included).
  token_budget_matched the target's own full prompt (instruction, exemplars, answer format, chat template if on)
                       with the question cut to its first M target tokens: the budget in the text methods'
                       format, so that under strict scoring it loses information, not the format.
  text_relay           the source answers in text; the target reads the full prompt, the source's answer
                       and the question again: `{prompt} {source answer}\\n\\n{zero-shot prompt}`.
Controls (on by default; a real bridge is far above them):
  latent_shuffled      latent, but with the soft tokens of another question (a seeded derangement of
                       the evaluated questions): shows the soft tokens carry *this* question.
  no_latent            [BOS][anchor] → target: what the target says with no question at all.
  chance               no model: each question is answered with the answer of its donor question
                       (the same derangement), i.e. a guess drawn from the answers' distribution.
  prior                no model: the most common training gold among training questions of the same
                       `Example.prior_key` (the toy worlds: the same change, without the private count),
                       else the most common training gold: the best answer that needs no private knowledge.
The toy complementary world's probes (`Example.probe`, written by `toy.task.lookup_probes`):
  source_fact          the source answers the full prompt, scored on whether its first number is the
                       question's private fact: the bridge's ceiling (what the source knows).
  latent_name_swap     latent, the bridge reading the question about another known person whose
                       fact differs: a bridge that carries the fact now carries the wrong one.
  latent_unknown_name  latent, the bridge reading the question about a person no LM ever read.
  text_relay_stated    the source answers; its first number is written into the question as the fact
                       sentence of the target's own pretraining format ("Sam has 5 pens."), and the
                       target answers that: the text channel at its best.
"""
import collections
import dataclasses
import random
import re
from collections.abc import Callable, Sequence

from interlingua_jax.core import registry
from interlingua_jax.data import pipeline, prompts
from interlingua_jax.data.records import Example
from interlingua_jax.evaluation.context import Context


@dataclasses.dataclass(frozen=True)
class Question:
  """What a method may build its input from."""
  example: Example
  donor: Example | None  # another evaluated question (a seeded derangement); None when only one is evaluated
  relayed: str | None = None  # the prediction of the method named in `Method.reads` (text_relay)


@dataclasses.dataclass(frozen=True)
class Method:
  """One evaluation method.

  model: which LM answers ("source" or "target"), or None for an answer built without a model.
  ids: the answering model's text input ids; BOS included, except for soft-token methods, whose row
    is [BOS][soft][ids] with the BOS placed by the layout.
  soft_from: for bridge methods, the question the bridge reads. With a soft-token bridge the target reads
    [BOS][soft][ids]; with a cache bridge (`Context.cache_source`) it reads its own full prompt, its cache
    rewritten by the bridge, and `ids` is not used.
  variant: a bridge method's variant of the bridge, by a name its kind defines (a cache bridge's controls:
    its source cache zeroed, noise); "" = the bridge as trained.
  answer: for model-free methods, the prediction text itself.
  reads: the method whose predictions this one reads (into `Question.relayed`).
  control: a control, not a contender (shown beside the methods, never the headline).
  score: (example, prediction) -> {"correct", "extracted", "gold"}, for a method scored against something other
    than the question's gold (source_fact); None: the dataset's scoring.
  """
  name: str
  model: str | None
  ids: Callable[[Context, Question], list[int]] | None = None
  soft_from: Callable[[Question], Example] | None = None
  answer: Callable[[Context, Question], str] | None = None
  reads: str | None = None
  control: bool = False
  score: Callable[[Example, str], dict] | None = None
  variant: str = ""

  def __post_init__(self):
    answered_by_model = self.model is not None and self.ids is not None and self.answer is None
    if not answered_by_model and not (self.model is None and self.ids is None and self.answer is not None):
      raise ValueError(f"method {self.name!r}: give `model` and `ids` (a model answers) or `answer` alone "
                       "(no model answers)")
    if self.variant and self.soft_from is None:
      raise ValueError(f"method {self.name!r}: a variant of the bridge needs `soft_from` (a bridge method)")
    if self.model not in (None, "source", "target"):
      raise ValueError(f"method {self.name!r}: model must be 'source', 'target' or None, got {self.model!r}")


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
  return registry.add(REGISTRY, method, "evaluation method")


def get(name: str) -> Method:
  return registry.find(REGISTRY, name, "evaluation method", "eval.methods")


def derangement(n: int, seed: int) -> list[int]:
  """A random permutation with no fixed point (Sattolo's algorithm: one n-cycle), seeded."""
  if n < 2:
    raise ValueError(f"a derangement needs at least 2 elements, got {n}")
  order = list(range(n))
  rng = random.Random(seed)
  for i in range(n - 1, 0, -1):
    j = rng.randrange(i)
    order[i], order[j] = order[j], order[i]
  return order


def prior_answers(train: Sequence[Example]) -> dict[str | None, str]:
  """The `prior` baseline's table: per `prior_key` (and None: overall), the answer text of a training question
  whose gold is that key's most common gold (ties broken by the smaller gold, so the table is deterministic)."""
  groups: dict[str | None, list[Example]] = collections.defaultdict(list)
  for e in train:
    groups[None].append(e)
    if e.prior_key is not None:
      groups[e.prior_key].append(e)
  table = {}
  for key, examples in groups.items():
    counts = collections.Counter(e.gold for e in examples)
    gold = min(counts, key=lambda g: (-counts[g], g))
    table[key] = next(e.answer for e in examples if e.gold == gold)
  return table


def first_number(text: str) -> str | None:
  match = re.search(r"-?\d+", text)
  return match.group(0) if match else None


# --------------------------------------------------------------------------------------------------
# Built-in methods


def _tokenizer(ctx: Context, model: str):
  return ctx.frozen.source_tokenizer if model == "source" else ctx.frozen.target_tokenizer


def _full_prompt(model: str) -> Callable:
  """The model's text prompt as it reads it: chat template if on, exactly one BOS (`PromptBuilder.ids`)."""
  return lambda ctx, q: ctx.builder.ids(_tokenizer(ctx, model), ctx.builder.source_prompt(q.example))


def budget(text: Callable[[Context, Example], str]) -> Callable:
  """The first M target tokens of `text`, then the anchor: the bridge's layout with text for soft tokens."""
  def ids(ctx: Context, q: Question) -> list[int]:
    tok = ctx.frozen.target_tokenizer
    head = pipeline.token_ids(tok, text(ctx, q.example))[:ctx.num_soft_tokens]
    return pipeline.with_bos(tok, head + pipeline.anchor_ids(tok, ctx.anchor))
  return ids


def _matched_budget(ctx: Context, q: Question) -> list[int]:
  tok = ctx.frozen.target_tokenizer
  head = tok.decode(pipeline.token_ids(tok, q.example.question)[:ctx.num_soft_tokens])
  return ctx.builder.ids(tok, ctx.builder.source_prompt(dataclasses.replace(q.example, question=head)))


def _relay(ctx: Context, q: Question) -> list[int]:
  if q.relayed is None:
    raise ValueError("text_relay needs the source's prediction for each question.")
  zero_shot = prompts.build_prompt(ctx.dataset, q.example)
  relay = f"{ctx.builder.source_prompt(q.example)} {q.relayed.strip()}\n\n{zero_shot}"
  return ctx.builder.ids(ctx.frozen.target_tokenizer, relay)


def _donor(q: Question) -> Example:
  if q.donor is None:
    raise ValueError("the controls read another question's input: evaluate at least 2 questions.")
  return q.donor


def anchor(ctx: Context, q: Question) -> list[int]:
  """The target's text after the soft tokens (the layout puts the BOS in front of them)."""
  return pipeline.anchor_ids(ctx.frozen.target_tokenizer, ctx.anchor)


register(Method("source_alone", "source", _full_prompt("source")))
register(Method("target_alone", "target", _full_prompt("target")))
register(Method("latent", "target", anchor, soft_from=lambda q: q.example))
register(Method("token_budget", "target", budget(lambda ctx, e: e.question)))
register(Method("token_budget_prompt", "target", budget(lambda ctx, e: prompts.build_prompt(ctx.dataset, e))))
register(Method("token_budget_matched", "target", _matched_budget))
register(Method("text_relay", "target", _relay, reads="source_alone"))
register(Method("latent_shuffled", "target", anchor, soft_from=_donor, control=True))
register(Method("no_latent", "target", lambda ctx, q: pipeline.with_bos(ctx.frozen.target_tokenizer, anchor(ctx, q)),
                control=True))
register(Method("chance", None, answer=lambda ctx, q: _donor(q).answer, control=True))


def _prior(ctx: Context, q: Question) -> str:
  if not ctx.prior:
    raise ValueError("the prior baseline needs the training answers (Context.prior): none were given.")
  return ctx.prior.get(q.example.prior_key, ctx.prior[None])


def _probed(name: str) -> Callable[[Question], Example]:
  """The question with its text replaced by one of its probes (what the bridge reads instead)."""
  return lambda q: dataclasses.replace(q.example, question=q.example.probe(name))


def _fact_score(example: Example, prediction: str) -> dict:
  fact, said = example.probe("fact"), first_number(prediction)
  return {"correct": said == fact, "extracted": said, "gold": fact}


def _stated_relay(ctx: Context, q: Question) -> list[int]:
  if q.relayed is None:
    raise ValueError("text_relay_stated needs the source's prediction for each question.")
  count = first_number(q.relayed) or q.relayed.strip()  # no number: the relay passes on what it has
  stated = dataclasses.replace(q.example, question=q.example.probe("stated").replace("{count}", count))
  return ctx.builder.ids(ctx.frozen.target_tokenizer, ctx.builder.source_prompt(stated))


register(Method("prior", None, answer=_prior, control=True))
register(Method("source_fact", "source", _full_prompt("source"), control=True, score=_fact_score))
register(Method("latent_name_swap", "target", anchor, soft_from=_probed("name_swap"), control=True))
register(Method("latent_unknown_name", "target", anchor, soft_from=_probed("unknown_name"), control=True))
register(Method("text_relay_stated", "target", _stated_relay, reads="source_alone"))
# `latent` with the checkpoint the test split does not read (`run.stages.evaluated_checkpoint`): the eval stage adds one
register(Method("latent_at_best", "target", anchor, soft_from=lambda q: q.example, control=True))
register(Method("latent_at_final", "target", anchor, soft_from=lambda q: q.example, control=True))
CHECKPOINT_METHODS = ("latent_at_best", "latent_at_final")
PROBES = ("source_fact", "latent_name_swap", "latent_unknown_name", "text_relay_stated")  # need Example.probe
