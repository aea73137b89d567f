"""Renderers for where the deployment runs: pure functions from the model to files."""
