"""Layers: the Module base and basic layers, the two mixers, the transformer block.

    module.py      Module, Linear, Dense, Embedding, LayerNorm, Dropout, Sequential
    summation.py   the summation layer (the paper's mixer)
    attention.py   multi-head self-attention
    block.py       the post-norm block that takes either mixer
"""
from minisum.nn.attention import MultiHeadAttention
from minisum.nn.block import Block, attention_block, summation_block
from minisum.nn.module import Dense, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, ReLU, Sequential
from minisum.nn.summation import CausalSummation, SummationPooling, positional_modulation

__all__ = ["Module", "ModuleList", "Sequential", "Linear", "Dense", "Embedding", "LayerNorm", "Dropout", "ReLU",
           "MultiHeadAttention", "CausalSummation", "SummationPooling", "positional_modulation", "Block",
           "attention_block", "summation_block"]
