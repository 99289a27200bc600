"""The same transform as a warm fanout command: no split, no Pool, no concat.
fanout run --header -i IN.csv -o OUT.csv exec --warm -- python3 recipe_fanout.py
(PYTHONPATH must reach python/fanout_warm.py; without --warm it filters stdin to stdout.)"""
import fanout_warm

from transform import DTYPES, transform

fanout_warm.serve_dataframe(transform, read_csv={"dtype": DTYPES})
