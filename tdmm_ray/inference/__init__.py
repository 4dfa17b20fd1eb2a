"""Inference on a trained run: both translation directions, shared by the CLI and Serve."""
