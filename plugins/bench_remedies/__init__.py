"""First-party plugin: the collapse remedies (training methods and losses) and their suite."""
