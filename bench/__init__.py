"""t2v-bench: one contract, one runner, comparable numbers for training-efficient text-to-video methods."""
__version__ = "0.1.0"
