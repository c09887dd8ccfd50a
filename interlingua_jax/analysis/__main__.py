from interlingua_jax.analysis import cli

cli.run()
