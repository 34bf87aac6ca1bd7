"""The ViT paper's inspection figures (Dosovitskiy et al. 2021, Figure 7) for a bundle."""
