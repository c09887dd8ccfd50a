"""The extractive-QA toy world: SQuAD-format questions about invented people and towns, and two tiny
pretrained *targets* of different families and tokenizers that read a context and answer with a span.

A context is a few facts ("Mira lives in Tolven. Mira's sister is Asha. Tolven has four bridges."), the
question asks for one of them, and the answer is a span of the context. Distractor facts of the same
relation (other people living in other towns) come in random order, so neither position nor type alone
answers it. Test questions never occur in training or pretraining text: with `held_out_names`, test
contexts use only names that no training text contains (answering is copying a span never seen); without,
a hash of the question's text decides its split, and the few names (`num_names`, each one token) recur.

The targets, as `prepare(...)["targets"]`: a Llama-architecture LM with a byte-level BPE tokenizer that adds
BOS, and a Qwen2-architecture LM with a Qwen-style tokenizer that adds none. Both pretrain on the SQuAD
prompt of `data/squad.py` followed by the answer, `{context}\\n\\nQuestion: {question}\\nAnswer: {span}`, with
fresh training questions every step, and are saved as HF checkpoint directories. With `answer_only` the loss
reads only the spans (the prompt is read, not learned) and each context carries up to `questions_per_text`
questions (`lm_pieces`): the whole-text loss spends a tiny model's steps on modelling the facts themselves.

Configs use a section `c.toy.extractive = ConfigDict(...)` whose keys are `prepare`'s settings: seed,
num_train, num_test, num_names (per kind: people, towns), min_facts, max_facts, max_same, distinct_names,
held_out_names, pretrain_steps, pretrain_batch_size, pretrain_learning_rate, hidden_size, num_layers,
vocab_size, tokenizer_texts, answer_only, questions_per_text (`REDUCED` and `FULL` are the two sizes
measured). Everything is cached under `<root>/extractive_<hash of the settings>/`.
"""
import functools
import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np

from interlingua_jax.core import outputs
from interlingua_jax.data import prompts
from interlingua_jax.data.records import Example
from interlingua_jax.toy import pretrain
from interlingua_jax.toy import tokenizer as toy_tokenizer

VERSION = 2  # bump whenever the generator changes: cached data and targets are then rebuilt
NUMBERS = tuple(str(n) for n in range(2, 100))  # digits: the two tokenizers split them differently
JOBS = ("baker", "farmer", "painter", "sailor", "teacher", "miner", "weaver", "potter", "singer", "tailor")
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "pink")
# relation: (fact, question, subject kind, value kind); kinds are "person", "town" or a closed word list.
RELATIONS = {
    "lives": ("{s} lives in {v}.", "Where does {s} live?", "person", "town"),
    "sister": ("{s}'s sister is {v}.", "Who is {s}'s sister?", "person", "person"),
    "bridges": ("{s} has {v} bridges.", "How many bridges does {s} have?", "town", NUMBERS),
    "job": ("{s} works as a {v}.", "What is {s}'s job?", "person", JOBS),
    "color": ("{s} likes the color {v}.", "Which color does {s} like?", "person", COLORS),
}
TEMPLATE = "{prompt} {answer}"  # what the targets pretrain on: the evaluation prompt, then the span
_TEST_NAME_BUCKETS = 5  # with held_out_names, 1 name in 5 is a test name
_TEST_QUESTION_BUCKETS = 10  # without, 1 question in 10 (by its text) is a test question

# REDUCED: the test suite's plumbing size (one pretraining step, seconds). FULL: the rehearsal size. Measured
# on 2 idle CPU cores: 11 min (Llama) and 14 min (Qwen2) of pretraining; text F1 0.43 / 0.37, against 0.41 for
# answering the asked relation's first value: the targets pick the relation's value out of the context but
# do not yet match its subject. With the whole-text loss (answer_only=False) text F1 was 0.05.
REDUCED = dict(seed=0, num_train=64, num_test=16, num_names=100, min_facts=3, max_facts=4, max_same=1,
               held_out_names=True, pretrain_steps=1, pretrain_batch_size=4, pretrain_learning_rate=3e-3,
               hidden_size=32, num_layers=2, vocab_size=300, tokenizer_texts=500, answer_only=True,
               questions_per_text=2, distinct_names=True)
FULL = dict(seed=0, num_train=20000, num_test=500, num_names=40, min_facts=3, max_facts=5, max_same=2,
            held_out_names=False, pretrain_steps=3000, pretrain_batch_size=64, pretrain_learning_rate=3e-3,
            hidden_size=64, num_layers=2, vocab_size=1024, tokenizer_texts=5000, answer_only=True,
            questions_per_text=4, distinct_names=True)


@functools.cache  # every pretraining text asks again
def _names(seed: int, kind: str, num: int) -> tuple[str, ...]:
  """Invented two-syllable names ("Mira", "Tolven"), distinct, the same for the same seed."""
  rng = np.random.default_rng([seed, 11 if kind == "person" else 12])
  onsets, vowels, codas = list("bdfgklmnprstvz"), list("aeiou"), ["", "l", "n", "r", "s"]
  names = set()
  while len(names) < num:
    first = rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
    second = rng.choice(onsets) + rng.choice(vowels) + ("" if kind == "person" else rng.choice(codas[1:]))
    names.add((first + second).capitalize())  # people end in a vowel ("Mira"), towns in a consonant ("Tolven")
  return tuple(sorted(names))


def _bucket(text: str, buckets: int) -> int:
  return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % buckets


def is_test_name(name: str) -> bool:
  return _bucket(name, _TEST_NAME_BUCKETS) == 0


def is_test_question(row: dict) -> bool:
  """The split of a question fixed by its text alone (context and question), so no sampler can leak it."""
  return _bucket(row["context"] + "\n" + row["question"], _TEST_QUESTION_BUCKETS) == 0


def _pools(seed: int, split: str, held_out_names: bool, num_names: int) -> dict[str, tuple[str, ...]]:
  """The names a split may use: with held_out_names, test names and the others never meet."""
  pools = {}
  for kind in ("person", "town"):
    names = _names(seed, kind, num_names)
    pools[kind] = names if not held_out_names else tuple(n for n in names if is_test_name(n) == (split == "test"))
  return pools


def _value(rng: np.random.Generator, kind, pools: dict[str, tuple[str, ...]], exclude: set[str]) -> str:
  options = [v for v in (pools[kind] if isinstance(kind, str) else kind) if v not in exclude]
  return str(options[rng.integers(len(options))])


def sample_example(rng: np.random.Generator, pools: dict[str, tuple[str, ...]], *, min_facts: int, max_facts: int,
                   max_same: int, distinct_names: bool) -> dict:
  """One question in the flat SQuAD layout (`id` left to the split), plus the `candidates` (values of the
  asked relation in context order; not written to the files).

  The asked fact and 1..max_same distractors of the same relation (other subjects, other values), then
  facts of other relations up to min_facts..max_facts in all, shuffled. Every subject has at most one fact
  per relation, so the question has one answer. With `distinct_names` no name occurs twice in a context, so
  the asked subject alone finds the fact (one-hop recall); without, the other facts are often about the
  same people, and the reader must match subject and relation together.
  """
  relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
  template, question, subject_kind, value_kind = RELATIONS[relation]
  facts, used = [], set()  # (relation, subject, value), (relation, subject)

  def taken(rel: str) -> set[str]:  # names a new fact of `rel` may not use
    if distinct_names:
      return {s for _, s, _ in facts} | {v for _, _, v in facts}
    return {s for r, s in used if r == rel}

  for _ in range(1 + int(rng.integers(1, max_same + 1))):
    subject = _value(rng, subject_kind, pools, taken(relation))
    value = _value(rng, value_kind, pools, {subject} | taken(relation) | {v for r, _, v in facts if r == relation})
    facts.append((relation, subject, value))
    used.add((relation, subject))
  asked = facts[0]
  people = [s for r, s, _ in facts if RELATIONS[r][2] == "person"]
  num_facts, others = int(rng.integers(min_facts, max_facts + 1)), [r for r in RELATIONS if r != relation]
  while len(facts) < num_facts:
    other = others[rng.integers(len(others))]
    kind = RELATIONS[other][2]
    known = [s for s in people if (other, s) not in used] if kind == "person" and not distinct_names else []
    subject = known[0] if known and rng.integers(2) else _value(rng, kind, pools, taken(other))
    if (other, subject) in used:
      continue
    facts.append((other, subject, _value(rng, RELATIONS[other][3], pools, {subject} | taken(other))))
    used.add((other, subject))
  order = rng.permutation(len(facts))
  sentences = [RELATIONS[facts[i][0]][0].format(s=facts[i][1], v=facts[i][2]) for i in order]
  context = " ".join(sentences)
  asked_at = list(order).index(0)
  sentence_start = sum(len(s) + 1 for s in sentences[:asked_at])
  value_start = sentence_start + template.format(s=asked[1], v="\0").index("\0")
  assert context[value_start:value_start + len(asked[2])] == asked[2]
  candidates = [facts[i][2] for i in order if facts[i][0] == relation]  # the asked relation's values, in order
  others = [(RELATIONS[r][1].format(s=subject), value) for r, subject, value in facts[1:]]
  return {"title": "toy", "context": context, "question": question.format(s=asked[1]),
          "answers": {"text": [asked[2]], "answer_start": [value_start]}, "candidates": candidates,
          "other_questions": others}


def sample_split(rng: np.random.Generator, split: str, *, seed: int, num_names: int, held_out_names: bool,
                 **facts: int) -> dict:
  """One fresh question of `split` ("train" or "test"): the training and pretraining stream never holds a
  test question, because test names (held_out_names) or test question texts (otherwise) are kept apart."""
  pools = _pools(seed, split, held_out_names, num_names)
  while True:
    row = sample_example(rng, pools, **facts)
    if held_out_names or is_test_question(row) == (split == "test"):
      return row


def make_split(split: str, num: int, *, seed: int, **shape) -> list[dict]:
  """num distinct questions (by context and question) of one split, the same for the same seed; `shape` is
  num_names, held_out_names, min_facts, max_facts, max_same."""
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  seen, rows = set(), []
  while len(rows) < num:
    row = sample_split(rng, split, seed=seed, **shape)
    if (row["context"], row["question"]) not in seen:
      seen.add((row["context"], row["question"]))
      # Questions on one text are near-duplicates for the intervals and the validation carve: one cluster.
      cluster = "context:" + hashlib.blake2b(row["context"].encode(), digest_size=8).hexdigest()
      rows.append({"id": f"{split}-{len(rows)}", **row, "cluster": cluster})
  return rows


def _prompt(question: str, context: str) -> str:
  return prompts.build_prompt("squad", Example("", question, "", gold="-", context=context))


def lm_text(row: dict) -> str:
  """The pretraining text: the evaluation prompt exactly as `data/squad.py` builds it, then the span."""
  return TEMPLATE.format(prompt=_prompt(row["question"], row["context"]), answer=row["answers"]["text"][0])


def lm_pieces(row: dict, questions_per_text: int) -> list[tuple[str, bool]]:
  """The answer-only pretraining text, as `pretrain.lm_batch` pieces: the evaluation prompt, the span
  (learned), then up to questions_per_text - 1 more questions about the same context, each prompt followed
  by its span (learned). More answers per context is more supervision per step for the same reading
  work; only training questions are added (`is_test_question`), so the pretraining never sees a test one.
  """
  context = row["context"]
  pieces = [(_prompt(row["question"], context), False), (" " + row["answers"]["text"][0], True)]
  extra = [(q, a) for q, a in row["other_questions"] if not is_test_question({"context": context, "question": q})]
  for question, answer in extra[:questions_per_text - 1]:
    pieces += [(_prompt(question, ""), False), (" " + answer, True)]
  return pieces


def information(train: Sequence[dict], test: Sequence[dict]) -> dict:
  """What the splits carry: sizes, distinct answers, context length, the EM of answering by position (the
  first fact of the asked relation in the context) and the share of test answers found in training text."""
  train_text = " ".join(r["context"] for r in train)
  answers = [r["answers"]["text"][0] for r in test]
  return {"num_train": len(train), "num_test": len(test), "distinct_test_answers": len(set(answers)),
          "mean_context_chars": float(np.mean([len(r["context"]) for r in test])),
          "position_em": float(np.mean([r["candidates"][0] == a for r, a in zip(test, answers)])),
          "test_answers_in_train": float(np.mean([a in train_text for a in answers]))}


def _write_jsonl(path: str, rows: Sequence[dict]) -> None:
  private = ("candidates", "other_questions")
  outputs.write_jsonl(path, ({k: v for k, v in row.items() if k not in private} for row in rows))


TARGETS = {  # name: (model_type, tokenizer trainer); the two families and tokenizer styles of issue 13
    "llama": ("llama", toy_tokenizer.train_target_tokenizer),
    "qwen": ("qwen2", toy_tokenizer.train_qwen_tokenizer),
}


def prepare(root: str, *, seed: int, num_train: int, num_test: int, num_names: int, min_facts: int,
            max_facts: int, max_same: int, distinct_names: bool, held_out_names: bool, pretrain_steps: int,
            pretrain_batch_size: int, pretrain_learning_rate: float, hidden_size: int, num_layers: int,
            vocab_size: int, tokenizer_texts: int, answer_only: bool, questions_per_text: int,
            build: Sequence[str] = tuple(TARGETS)) -> dict:
  """{"train", "test", "info", "targets": {"llama": dir, "qwen": dir}}: the world under `root`, built once.

  Files are written whole or not at all, info.json after the splits; each target's marker is written
  last (`pretrain.build_lm`), so an interrupted build is redone, never reused. `build` limits which
  targets are pretrained, so two processes can pretrain the two at once (each reuses the other's when done).
  """
  if not 3 <= min_facts <= max_facts or not 1 <= max_same < min_facts:
    raise ValueError(f"toy.extractive: need 3 <= min_facts <= max_facts and 1 <= max_same < min_facts, got "
                     f"min_facts={min_facts}, max_facts={max_facts}, max_same={max_same}")
  shape = dict(num_names=num_names, held_out_names=held_out_names, min_facts=min_facts, max_facts=max_facts,
               max_same=max_same, distinct_names=distinct_names)
  settings = dict(seed=seed, num_train=num_train, num_test=num_test, pretrain_steps=pretrain_steps,
                  pretrain_batch_size=pretrain_batch_size, pretrain_learning_rate=pretrain_learning_rate,
                  hidden_size=hidden_size, num_layers=num_layers, vocab_size=vocab_size,
                  tokenizer_texts=tokenizer_texts, answer_only=answer_only,
                  questions_per_text=questions_per_text, version=VERSION, **shape)
  key = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=5).hexdigest()
  directory = os.path.join(root, f"extractive_{key}")
  os.makedirs(directory, exist_ok=True)
  paths = {split: os.path.join(directory, f"{split}.jsonl") for split in ("train", "test")}
  paths["info"] = os.path.join(directory, "info.json")
  if not os.path.exists(paths["info"]):
    train = make_split("train", num_train, seed=seed, **shape)
    test = make_split("test", num_test, seed=seed, **shape)
    _write_jsonl(paths["train"], train)
    _write_jsonl(paths["test"], test)
    outputs.write_json(paths["info"], information(train, test))
  text = (lambda row: lm_pieces(row, questions_per_text)) if answer_only else lm_text
  sample_texts = lambda rng, n: [text(sample_split(rng, "train", seed=seed, **shape)) for _ in range(n)]
  size = pretrain.ToyLMSize(hidden_size=hidden_size, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                            intermediate_size=3 * hidden_size)
  paths["targets"] = {}
  for i, (name, (model_type, train_tokenizer)) in enumerate(TARGETS.items()):
    paths["targets"][name] = os.path.join(directory, "targets", name)
    if name not in build:
      continue
    pretrain.build_lm(
        paths["targets"][name], dict(settings, target=name, model_type=model_type),
        model_type=model_type, size=size, train_tokenizer=train_tokenizer, vocab_size=vocab_size,
        sample_texts=sample_texts, steps=pretrain_steps, batch_size=pretrain_batch_size,
        learning_rate=pretrain_learning_rate, seed=seed + i, tokenizer_seed=seed,
        tokenizer_corpus_size=tokenizer_texts)
  return paths
