"""Gated PixelCNN VAE and skip-VAE for binarized images (Dieng et al. 2019, image experiments)."""
