"""The run directory as code: the `run.json` model, the parquet schemas, the `/v1/stats` model,
the scenario model, the metric definitions (pure data) and `load_run`, which every reader uses."""
