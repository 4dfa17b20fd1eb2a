"""Evaluation: text and motion metrics, the text-motion evaluator, and the report."""
