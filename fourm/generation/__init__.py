"""Generation with a FourM model: samplers (MaskGIT, ROAR, autoregressive), classifier-free
guidance, conditions and chained any-to-any generation.

Usage::

    from fourm.generation import GenerationPlan, GenerationTarget, generate_chained

    plan = GenerationPlan(targets=[GenerationTarget("rgb", steps=8), GenerationTarget("caption", scheme="ar")])
    out = generate_chained(model, {"depth": depth_tokens}, plan, num_samples=2, seed=0)
"""

from fourm.generation.autoregressive import AutoregressiveSampler, SequenceOutput
from fourm.generation.chain import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.conditions import EncoderInputs, GivenTokens, encoder_inputs, normalize_conditions
from fourm.generation.decoding import ParallelDecoder, SequenceDecoder, TargetHead
from fourm.generation.grammar import BoxGrammar, LogitsProcessor, PaletteGrammar, grammar_for
from fourm.generation.guidance import Guidance, combine_passes
from fourm.generation.maskgit import MaskGITSampler, ParallelSampler, ParallelState
from fourm.generation.roar import ROARSampler
from fourm.generation.sampling import (
    filter_logits,
    gumbel_noise,
    make_generator,
    sample_tokens,
    token_log_probs,
)
from fourm.generation.schedules import TemperatureSchedule, chunks_per_step, fixed_per_step, masked_fraction

__all__ = [
    "AutoregressiveSampler",
    "BoxGrammar",
    "EncoderInputs",
    "GenerationPlan",
    "GenerationTarget",
    "GivenTokens",
    "Guidance",
    "LogitsProcessor",
    "MaskGITSampler",
    "PaletteGrammar",
    "ParallelDecoder",
    "ParallelSampler",
    "ParallelState",
    "ROARSampler",
    "SequenceDecoder",
    "SequenceOutput",
    "TargetHead",
    "TemperatureSchedule",
    "chunks_per_step",
    "combine_passes",
    "encoder_inputs",
    "filter_logits",
    "fixed_per_step",
    "generate_chained",
    "grammar_for",
    "gumbel_noise",
    "make_generator",
    "masked_fraction",
    "normalize_conditions",
    "sample_tokens",
    "token_log_probs",
]
