"""Homeport: run, federate and govern your organisation's own Matrix homeservers."""

__version__ = "0.1.0"
