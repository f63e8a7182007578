"""Tasks: each owns its data and its reward. `datasets.yaml` is the few-shot classification registry."""
