"""The FourM encoder-decoder: layers, packed embeddings, masks, config and the model itself."""

from fourm.model.attention import Attention
from fourm.model.blocks import DecoderBlock, EncoderBlock
from fourm.model.config import PRESETS, FourMConfig, ModalityConfig
from fourm.model.embeddings import PackedEmbeddings
from fourm.model.fourm import DecoderCache, FourM
from fourm.model.linear import Linear, set_fast_cpu_linear
from fourm.model.masks import cross_attention_mask, decoder_attention_mask, encoder_attention_mask
from fourm.model.mlp import SwiGLU
from fourm.model.norm import LayerNorm, RMSNorm
from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d

__all__ = [
    "PRESETS",
    "Attention",
    "DecoderBlock",
    "DecoderCache",
    "EncoderBlock",
    "FourM",
    "FourMConfig",
    "LayerNorm",
    "Linear",
    "ModalityConfig",
    "PackedEmbeddings",
    "RMSNorm",
    "SwiGLU",
    "cross_attention_mask",
    "decoder_attention_mask",
    "encoder_attention_mask",
    "set_fast_cpu_linear",
    "sincos_table_1d",
    "sincos_table_2d",
]
