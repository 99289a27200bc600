"""A warm command with the shipped helper (python/fanout_warm.py): uppercases each line.

    PYTHONPATH=python fanout run -i in.txt -o out.txt exec --warm -- python3 examples/warm/upper.py
"""
import fanout_warm

fanout_warm.serve_lines(str.upper)
