"""releasehub: a self-hosted model release server that speaks the Hugging Face Hub API."""

__version__ = "0.1.0"
