"""The paper's three model families."""
from minisum.models.classifier import AttentionClassifier, SummationClassifier
from minisum.models.language_model import MIXERS, LanguageModel
from minisum.models.multimodal import AttentionFusionRegressor, SummationFusionRegressor

__all__ = ["LanguageModel", "MIXERS", "SummationClassifier", "AttentionClassifier",
           "SummationFusionRegressor", "AttentionFusionRegressor"]
