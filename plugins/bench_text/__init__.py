"""Text data sets (PTB, Yahoo) and LSTM VAE / skip-VAE models for collapse-bench."""
