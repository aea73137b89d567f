"""One migration per file, in order: `NNNN_what.py` with revision `NNNN`."""
