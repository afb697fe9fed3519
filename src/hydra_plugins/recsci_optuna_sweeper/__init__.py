"""recsci's Optuna sweeper for Hydra: ``hydra/sweeper=optuna``.

Modules: ``config`` (structured config, ConfigStore entries), ``sweeper`` (the plugin class),
``pruning`` (Lightning ``OptunaPruningCallback`` and ``current_trial``). Modules whose names start
with ``_`` hold the implementation; Hydra's plugin scan skips them, which keeps start-up cheap.
"""
