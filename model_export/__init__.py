"""Build, import, train and export Vision Transformers; writes the bundles ``service`` runs."""

from model_export.config import PRESETS, ViTConfig
from model_export.model import ViT

__all__ = ["PRESETS", "ViT", "ViTConfig"]
