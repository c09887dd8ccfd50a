"""Tiny checkpoints whose tokenizers are shaped like the real ones, as a first real run meets them.

Mistral-7B-Instruct-v0.3 side: SentencePiece-style BPE (Metaspace "▁", byte fallback <0x00>..<0xFF>),
<unk>=0 <s>=1 </s>=2, no pad token, <s> added by the post-processor, an [INST] chat template.
Llama-3.1-8B-Instruct side: byte-level BPE, <|begin_of_text|> added by the post-processor, eos_token
<|eot_id|>, config.json and generation_config.json listing three EOS ids, no pad token.
"""
import json
import os

from conftest import TINY_CORPUS, save_tiny_hf_model

CORPUS = TINY_CORPUS + [
    "Tom has 3 apples and gets 4 more. How many apples does Tom have?",
    "Paris is the capital of France. The Eiffel Tower is in Paris.",
]
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>",
                  "<|end_header_id|>"]
LLAMA_CHAT = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
              "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
              "<|end_header_id|>\n\n{% endif %}")
MISTRAL_CHAT = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


def mistral_like_tokenizer():
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  from transformers import PreTrainedTokenizerFast

  metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
  plain = Tokenizer(models.BPE(unk_token="<unk>"))
  plain.pre_tokenizer = metaspace
  plain.train_from_iterator(CORPUS * 4, trainer=trainers.BpeTrainer(
      vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
  spec = json.loads(plain.to_str())
  learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])[3:]
  vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
  vocab.update({token: 259 + i for i, (token, _) in enumerate(learned)})
  merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
  tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
  tok.add_special_tokens(["<unk>", "<s>", "</s>"])
  tok.pre_tokenizer = metaspace
  tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Strip(" ", 1, 0)])
  tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
  out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
  out.chat_template = MISTRAL_CHAT
  return out


def llama_like_tokenizer():
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(CORPUS * 4, trainer=trainers.BpeTrainer(
      vocab_size=400, special_tokens=LLAMA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      show_progress=False))
  bos = tok.token_to_id("<|begin_of_text|>")
  tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
  out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
  out.chat_template = LLAMA_CHAT
  return out


def save_real_like_pair(root) -> tuple[str, str]:
  """(source_dir, target_dir): tiny random Mistral and Llama checkpoints with the tokenizers above."""
  source, target = os.path.join(root, "mistral_like"), os.path.join(root, "llama_like")
  src_tok = mistral_like_tokenizer()
  save_tiny_hf_model(source, "mistral", src_tok, seed=1, bos_token_id=1, eos_token_id=2, pad_token_id=None)
  tgt_tok = llama_like_tokenizer()
  eos = [tgt_tok.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")]
  save_tiny_hf_model(target, "llama", tgt_tok, seed=0, bos_token_id=tgt_tok.bos_token_id, eos_token_id=eos,
                     pad_token_id=None)
  with open(os.path.join(target, "generation_config.json"), "w") as f:
    json.dump({"bos_token_id": tgt_tok.bos_token_id, "eos_token_id": eos, "do_sample": True}, f)
  return source, target
