"""Joint image-video tokenizer: the first frame patched as an image, later frames as space-time patches,
a space-time Transformer causal over frame groups, VQ codes, a mirrored decoder."""

from tokenizers_zoo.video.config import StageConfig, VideoTokenizerConfig, VideoTrainConfig
from tokenizers_zoo.video.tokenizer import VideoTokenizer

__all__ = ["StageConfig", "VideoTokenizer", "VideoTokenizerConfig", "VideoTrainConfig"]
