"""tdmm-ray: text <-> 3D facial motion corpus, tokenizer and bidirectional language model on Ray."""

__version__ = "0.1.0"
