"""fourm: train and use 4M-style any-to-any multimodal models."""

from fourm.errors import FourmError

__version__ = "0.1.0"
__all__ = ["FourmError", "__version__"]
