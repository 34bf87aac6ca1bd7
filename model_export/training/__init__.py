"""Training and fine-tuning: datasets, recipes, the training loop and evaluation."""
