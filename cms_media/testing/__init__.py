"""Test helpers that ship with the package (local OpenAI-compatible server), reused by tests,
the benchmark script and the demo so none of them needs the real API or a key.
"""
