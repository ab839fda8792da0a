"""Writes examples/churn.csv: a small, seeded, made-up customer table with the kinds of cells real tables hold
(text categories, booleans, empty cells), for the README's mixed-type example. Rerun to regenerate it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

STATES = ["CA", "NY", "TX", "WA", "FL", "IL", "MA", "OR", "CO", "NV", "VT"]
PLANS = ["basic", "plus", "pro"]


def main() -> None:
    rng = np.random.default_rng(2026)
    n = 600
    plan = rng.choice(PLANS, size=n, p=[0.5, 0.3, 0.2])
    state = rng.choice(STATES, size=n, p=np.r_[np.full(10, 0.098), 0.02])
    tenure = rng.gamma(2.0, 12.0, size=n).round(1)
    fee = (np.select([plan == "basic", plan == "plus"], [19.0, 39.0], 79.0) + rng.normal(0, 3, n)).round(2)
    autopay = rng.random(n) < 0.55
    calls = rng.poisson(1.2, size=n)
    logit = (-1.0 + 0.6 * calls - 0.05 * tenure + 0.9 * (plan == "basic") - 0.8 * autopay
             + 0.5 * (state == "TX"))
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    out = Path(__file__).with_name("churn.csv")
    with out.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["plan", "state", "tenure_months", "monthly_fee", "autopay", "support_calls", "churned"])
        for i in range(n):
            cells = [plan[i], state[i], tenure[i], fee[i], "true" if autopay[i] else "false", calls[i],
                     "yes" if churned[i] else "no"]
            for j in (1, 2, 4):  # some empty cells: a state, a tenure, an autopay flag not recorded
                if rng.random() < 0.04:
                    cells[j] = ""
            writer.writerow(cells)


if __name__ == "__main__":
    main()
