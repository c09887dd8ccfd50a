"""Suites: each file's get_config() lists the experiments `interlingua_jax.ablations` runs."""
