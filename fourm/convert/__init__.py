"""Converters from other 4M implementations' checkpoints to fourm models (``fourm-convert``)."""
