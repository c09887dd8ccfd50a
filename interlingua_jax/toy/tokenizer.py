"""Toy tokenizers, trained on toy text, in the real families' styles (Mistral, Llama-3 and Qwen2).

The source follows Mistral (SentencePiece-style BPE over "▁"-marked words, large
enough that every toy word is one token); the target follows Llama-3 (byte-level
BPE: any text encodes, punctuation and rarer words split into pieces, so the same
question has other tokens, and more of them). Both add `<s>` in front like the real tokenizers,
decode back to the exact text (spaces and newlines included, so strict `#### n`
extraction sees what the model wrote), and save as `PreTrainedTokenizerFast`
directories that `AutoTokenizer.from_pretrained` reloads. The Qwen-style one (the extractive toy
world's second target) adds no BOS, as the real Qwen tokenizers do.
"""
import string
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # the order of the special tokens below


def _wrap(tok: Tokenizer, **extra) -> PreTrainedTokenizerFast:
  # Prepend BOS on encode, as Llama/Mistral tokenizers do; callers that build their
  # own layout pass add_special_tokens=False.
  tok.post_processor = processors.TemplateProcessing(
      single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, BOS_ID)])
  return PreTrainedTokenizerFast(
      tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
      clean_up_tokenization_spaces=False, **extra)


def train_source_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
  """SentencePiece-style BPE: "▁" marks a word start; printable ASCII and newline are the alphabet."""
  tok = Tokenizer(models.BPE(unk_token=UNK))
  # Newlines are tokens of their own, so the answer never fuses with the question's last word.
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split("\n", behavior="isolated"),
      pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")])
  tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
  alphabet = list(string.printable.replace(" ", "").replace("\r", "").replace("\x0b", "").replace("\x0c", ""))
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK], initial_alphabet=alphabet + ["▁"],
      show_progress=False)
  tok.train_from_iterator(texts, trainer)
  return _wrap(tok, unk_token=UNK)


def train_target_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
  """Byte-level BPE: any text encodes (the harness adds prompt text the toy corpus never had)."""
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  tok.train_from_iterator(texts, trainer)
  return _wrap(tok)


QWEN_END = "<|endoftext|>"  # Qwen's end of text, which also pads


def train_qwen_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
  """Qwen2-style byte-level BPE: every digit its own token, the special tokens after the vocabulary (as in
  Qwen, so every id differs from the Llama-style one's), no BOS added, `<|endoftext|>` ends a text and pads."""
  specials = [QWEN_END, "<|im_start|>", "<|im_end|>"]
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False)])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  tok.train_from_iterator(texts, trainer)
  tok.add_special_tokens(specials)
  return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=QWEN_END, pad_token=QWEN_END,
                                 clean_up_tokenization_spaces=False)
