"""Inference: a loaded classifier, its predictions, results, decisions and explanations."""
