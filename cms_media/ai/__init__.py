"""AI image creation: provider adapters (OpenAI, offline sandbox) behind one small interface.

Kept free of Flask so the job layer, the benchmark and the tests can use it directly.
"""
