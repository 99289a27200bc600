"""The per-row pandas transform used by the recipes beside it and by scripts/bench-warm.

transform(df) adds two columns computed row by row in Python (the kind of logic that does
not vectorize: string rules per record) and one vectorized column. DTYPES pins each input
column's type, so that every chunk parses and prints exactly like the whole file."""

DTYPES = {"id": "int64", "city": "str", "amount": "float64", "note": "str"}


def _label(city, amount, note):
    words = note.split()
    key = city[:3].upper() + "-" + str(len(words))
    if amount > 500:
        key += "-HIGH"
    elif amount < 50:
        key += "-LOW"
    return key + "-" + "".join(w[0] for w in words if w).lower()


def transform(df):
    df["label"] = [_label(c, a, n) for c, a, n in zip(df["city"], df["amount"], df["note"])]
    df["vowels"] = [sum(ch in "aeiou" for ch in n) for n in df["note"]]
    df["amount_eur"] = (df["amount"] * 0.92).round(2)
    return df


def make_csv(path, rows, seed=17):
    """Writes a deterministic CSV of `rows` rows (id,city,amount,note)."""
    import random

    rng = random.Random(seed)
    cities = ["Lisbon", "Oslo", "Quito", "Nairobi", "Osaka", "Lima", "Perth", "Turin"]
    words = "alpha beta gamma delta river stone cloud ember maple quartz north ocean".split()
    with open(path, "w") as f:
        f.write("id,city,amount,note\n")
        for i in range(rows):
            note = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
            f.write("%d,%s,%.2f,%s\n" % (i, rng.choice(cities), rng.uniform(1, 1000), note))
