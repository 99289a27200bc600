"""The classic recipe: split the DataFrame, map the parts over a Pool, concatenate.
python3 recipe_pool.py IN.csv OUT.csv [WORKERS]"""
import multiprocessing
import os
import sys

import numpy as np
import pandas as pd

from transform import DTYPES, transform


def parallelize_dataframe(df, func, workers):
    parts = np.array_split(df, workers)
    with multiprocessing.Pool(workers) as pool:
        return pd.concat(pool.map(func, parts))


if __name__ == "__main__":
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
    df = pd.read_csv(sys.argv[1], dtype=DTYPES)
    parallelize_dataframe(df, transform, workers).to_csv(sys.argv[2], index=False)
