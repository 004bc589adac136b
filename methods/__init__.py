"""Method adapters, one module each. The registry (bench/registry.py) names them; nothing is imported eagerly."""
