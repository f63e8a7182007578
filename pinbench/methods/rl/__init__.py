"""The RL method (docs/method.md): a frozen policy LM with a trainable MLP Q head, trained with an
entropy regulariser (Shannon, sparse Tsallis, Tsallis q), PIN's token filter and an mc / td / pcl
objective. PIN and RLPrompt are its presets (``config.PRESETS``)."""
