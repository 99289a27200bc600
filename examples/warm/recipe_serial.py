"""Plain pandas, one process: python3 recipe_serial.py IN.csv OUT.csv"""
import sys

import pandas as pd

from transform import DTYPES, transform

df = pd.read_csv(sys.argv[1], dtype=DTYPES)
transform(df).to_csv(sys.argv[2], index=False)
