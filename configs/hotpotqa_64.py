"""hotpotqa_64: stable_64 on HotpotQA (distractor setting), scored by SQuAD EM/F1."""
from configs import base


def get_config():
  c = base.get_config()
  c.name = "hotpotqa_64"
  c.data.dataset = "hotpotqa"
  c.data.hf_name = "hotpotqa/hotpot_qa"
  c.data.hf_config = "distractor"
  c.data.test_split = "validation"  # the distractor setting has only train and validation
  c.data.num_shots = 0
  c.eval.max_new_tokens = 32
  c.eval.stop_strings = ("\n",)
  return c
