"""Benchmarks that compare innout with its PyTorch reference in the same process."""
