"""Generate a synthetic stand-in for CATelcoCustomerChurnTrainingSample.csv.

The Workbench churn sample shipped a 29-column CSV of telco customers.  This
script produces data with the same columns, value domains and roughly the same
distributions (about 9% churn), fully synthetic and seeded, so that the churn
experiment runs anywhere without downloading anything.

    python generate_churn_data.py [--rows N] [--seed S] [--out PATH]

The output is byte-identical for the same rows/seed (numpy's PCG64 generator,
fixed number formatting, "\\n" line endings).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "CATelcoCustomerChurnTrainingSample.csv"

COLUMNS = [
    "age",
    "annualincome",
    "calldroprate",
    "callfailurerate",
    "callingnum",
    "customerid",
    "customersuspended",
    "education",
    "gender",
    "homeowner",
    "maritalstatus",
    "monthlybilledamount",
    "noadditionallines",
    "numberofcomplaints",
    "numberofmonthunpaid",
    "numdayscontractequipmentplanexpiring",
    "occupation",
    "penaltytoswitch",
    "state",
    "totalminsusedinlastmonth",
    "unpaidbalance",
    "usesinternetservice",
    "usesvoiceservice",
    "percentagecalloutsidenetwork",
    "totalcallduration",
    "avgcallduration",
    "churn",
    "year",
    "month",
]

# fmt: off
STATES = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN", "KS",
    "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM",
    "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI",
    "WV", "WY",
]
# fmt: on
EDUCATION = [
    "Bachelor or equivalent",
    "High School or below",
    "Master or equivalent",
    "PhD or equivalent",
]
OCCUPATION = ["Technology Related Job", "Non-technology Related Job", "Others"]

# Fraction of rows written twice (the original sample contained duplicate
# records, which is why the experiment calls drop_duplicates()).
DUPLICATE_FRACTION = 0.01


def _choice(
    rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None
) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]


def _yes_no(rng: np.random.Generator, n: int, p_yes: float) -> np.ndarray:
    return np.where(rng.random(n) < p_yes, "Yes", "No").astype(object)


def _fmt2(a: np.ndarray) -> list[str]:
    return [f"{v:.2f}" for v in a.tolist()]


def make_rows(rows: int = 20000, seed: int = 42) -> list[list[str]]:
    """Return ``rows`` data rows (lists of strings, in COLUMNS order)."""
    if rows < 1:
        raise ValueError("rows must be >= 1")
    rng = np.random.default_rng(seed)
    n_dup = int(rows * DUPLICATE_FRACTION)
    n = rows - n_dup

    age = rng.integers(12, 87, n)
    annualincome = np.clip(rng.lognormal(11.0, 0.9, n), 0, 200000).astype(np.int64)
    calldroprate = np.round(rng.integers(0, 8, n) / 100, 2)
    callfailurerate = np.round(rng.integers(0, 4, n) / 100, 2)
    callingnum = rng.integers(4_250_000_000, 4_259_999_999, n)
    customerid = rng.permutation(np.arange(1, n + 1))
    customersuspended = _yes_no(rng, n, 0.78)
    education = _choice(rng, EDUCATION, n, [0.30, 0.30, 0.30, 0.10])
    gender = _choice(rng, ["Male", "Female"], n)
    homeowner = _yes_no(rng, n, 0.80)
    maritalstatus = _choice(rng, ["Single", "Married"], n)
    monthlybilledamount = rng.integers(0, 120, n)
    noadditionallines = rng.choice(4, size=n, p=[0.55, 0.25, 0.15, 0.05])
    numberofcomplaints = rng.choice(4, size=n, p=[0.55, 0.25, 0.13, 0.07])
    numberofmonthunpaid = rng.choice(8, size=n, p=[0.40, 0.20, 0.12, 0.09, 0.07, 0.05, 0.04, 0.03])
    numdaysexpiring = rng.integers(0, 100, n)
    occupation = _choice(rng, OCCUPATION, n, [0.20, 0.40, 0.40])
    penaltytoswitch = rng.integers(0, 500, n)
    state = _choice(rng, STATES, n)
    totalmins = rng.integers(0, 500, n)
    unpaidbalance = np.where(numberofmonthunpaid > 0, rng.integers(0, 251, n), 0)
    usesinternetservice = _yes_no(rng, n, 0.20)
    usesvoiceservice = _yes_no(rng, n, 0.20)
    pct_outside = np.round(rng.random(n) * 0.99, 2)
    calls = rng.integers(1, 16, n)
    avgcallduration = rng.integers(0, 1000, n) // np.maximum(calls // 3, 1)
    totalcallduration = np.minimum(avgcallduration * calls, 5000)

    # Churn: a logistic model over a few threshold-style drivers (complaints,
    # dropped calls, unpaid months, contract expiring, ...), intercept chosen
    # so that roughly 9% of customers churn.
    drivers = (
        1.0 * (numberofcomplaints >= 2)
        + 0.5 * numberofcomplaints
        + 1.2 * (calldroprate >= 0.05)
        + 1.0 * (numberofmonthunpaid >= 4)
        + 1.4 * (numdaysexpiring < 20)
        + 0.8 * (customersuspended == "No")
        + 0.8 * (penaltytoswitch < 100)
        + 0.6 * (age < 25)
    )
    logit = -11.95 + 3.0 * drivers
    churn = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    month = rng.integers(1, 4, n)

    cols = [
        age.tolist(),
        annualincome.tolist(),
        _fmt2(calldroprate),
        _fmt2(callfailurerate),
        callingnum.tolist(),
        customerid.tolist(),
        customersuspended.tolist(),
        education.tolist(),
        gender.tolist(),
        homeowner.tolist(),
        maritalstatus.tolist(),
        monthlybilledamount.tolist(),
        noadditionallines.tolist(),
        numberofcomplaints.tolist(),
        numberofmonthunpaid.tolist(),
        numdaysexpiring.tolist(),
        occupation.tolist(),
        penaltytoswitch.tolist(),
        state.tolist(),
        totalmins.tolist(),
        unpaidbalance.tolist(),
        usesinternetservice.tolist(),
        usesvoiceservice.tolist(),
        _fmt2(pct_outside),
        totalcallduration.tolist(),
        avgcallduration.tolist(),
        churn.tolist(),
        [2015] * n,
        month.tolist(),
    ]
    data = [list(map(str, r)) for r in zip(*cols, strict=True)]
    if n_dup:
        # Insert copies of random rows at random positions.
        copies = rng.choice(n, size=n_dup, replace=False).tolist()
        positions = set(rng.choice(rows, size=n_dup, replace=False).tolist())
        originals, duplicates = iter(data), iter(copies)
        data = [data[next(duplicates)] if i in positions else next(originals) for i in range(rows)]
    return data


def generate(path: str | os.PathLike[str] = DEFAULT_OUT, rows: int = 20000, seed: int = 42) -> Path:
    """Write the CSV to ``path`` (parent folders are created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make_rows(rows, seed)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(data)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="number of rows (default 20000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"output CSV (default: data/{DEFAULT_OUT.name} next to this script)",
    )
    args = parser.parse_args(argv)
    path = generate(args.out, rows=args.rows, seed=args.seed)
    print(f"wrote {args.rows} rows to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
