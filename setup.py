"""interlingua_jax: cross-model translation through a learned interlingua, in JAX."""
from setuptools import find_packages, setup

setup(
    name="interlingua_jax",
    version="0.1.0",
    description="Frozen source LLM -> trainable gated cross-attention translator -> frozen target LLM, in JAX/Flax NNX.",
    python_requires=">=3.11",
    packages=find_packages(include=["interlingua_jax", "interlingua_jax.*"]),
    install_requires=[
        "jax",
        "flax",
        "optax",
        "orbax-checkpoint",
        "grain",
        "ml-collections",
        "absl-py",
        "transformers",
        "tokenizers",
        "safetensors",
        "huggingface_hub",
        "datasets",
        "numpy",
        "tqdm",
        "matplotlib",
        "tensorboardX",
    ],
    extras_require={
        # torch is pinned: an unpinned torch pulls gigabytes of CUDA packages.
        "test": ["pytest", "hypothesis", "torch==2.13.0"],
        "gpu": ["jax[cuda12]"],
    },
)
