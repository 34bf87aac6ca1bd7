"""One module per concern: classify, explain, health, model."""
