"""The command line and the wire analysis stage."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from interlingua_jax.evaluation import compression, wire
from interlingua_jax.analysis import report
from interlingua_jax.training.state import split_module
from tiny_system import system, tiny_config, write_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", "interlingua_jax.main", *args], cwd=cwd, capture_output=True,
                        text=True, timeout=120)


def test_unknown_override_names_the_nearest_key(tmp_path):
  out = _main("--config=configs/stable_64.py", f"--workdir={tmp_path}", "--config.optim.learnin_rate=3")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert "learnin_rate" in last and 'Did you mean "learning_rate"' in last


def test_config_files_load_from_another_directory(tmp_path):
  out = _main(f"--config={REPO}/configs/stable_32.py", f"--workdir={tmp_path}", "--mode=report", cwd=str(tmp_path))
  assert out.returncode == 0, out.stderr[-2000:]
  assert os.path.exists(tmp_path / "report.md")


def test_compression_analysis(tiny_mistral_dir, tiny_llama_dir, tmp_path):
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, write_data(str(tmp_path)))
  run, kind, s = system(cfg, tmp_path)
  ctx = kind.contexts(run, s, split_module(kind.new_module(run, s)))[None]
  result = compression.analyse(ctx, s.test[:3], formats=("fp16", "int8", "int4"), group_size=32,
                               out_dir=str(tmp_path / "compression"))
  assert os.path.exists(tmp_path / "compression" / "compression.json")
  shape = (cfg.translator.num_soft_tokens, ctx.frozen.target.config.hidden_size)
  for fmt in ("fp16", "int8", "int4"):
    assert result["levels"][fmt]["packet_bytes"] == wire.packet_size(shape, fmt, 32)
  prompts = [ctx.builder.bridge_prompt(e) for e in s.test[:3]]  # what the translator reads instead of the text
  assert result["text_bytes_mean"] == pytest.approx(np.mean([len(p.encode()) for p in prompts]))
  assert result["levels"]["int4"]["packet_bytes"] < result["levels"]["int8"]["packet_bytes"] \
      < result["levels"]["fp16"]["packet_bytes"]
  text = report.wire_table(result)
  larger = [f for f, v in result["levels"].items() if v["packet_bytes"] > result["text_bytes_mean"]]
  assert text.count("LARGER than the text") == len(larger)

