"""Speed and scale benchmarks for qa_engine: run them with ``python bench/run.py``."""
