"""Bulk E.164 normalisation against per-row phonenumbers, measured in one run.

    python bench/normalize.py [--rows 1000000] [--naive-sample 100000] [--seed 7]

Data: `--rows` numbers as real lists look, default region GB. 40% British, the rest spread over
US, FR, DE, IN, BR, NG, ZA, IT, ES; every number drawn from phonenumbers' example numbers with a random tail
(so most are valid, some are not). British numbers are written in every shape lists carry (national with
trunk 0, E.164, spaced international, 00 prefix, the int-converted tracker id 447..., tel: URIs, "(0)",
dots and dashes); foreign ones in international shapes (E.164, spaced, 00, int-converted, tel:). 3% are
random digit strings and 2% junk (empty, None, placeholders, text).

Repeats ("mixed", the headline figure): rows draw from a pool of rows/5 numbers, so a number appears about
5 times; each number has a home writing used for 85% of its rows (a list from one source keeps one format)
and a random writing otherwise. The number of distinct raw values is printed. A second run ("distinct")
uses a different number, in a random writing, on every row.

Baseline ("naive"): per row, phonenumbers.parse + is_valid_number + format_number(E164). It is timed on a
random sample of `--naive-sample` rows of the same data and reported as rows/s (extrapolated, not run on
every row, to keep the bench short). The bulk path runs on every row. Both paths are warmed up first on
2,000 rows (phonenumbers loads region metadata lazily; a long-running worker pays that once).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time

import phonenumbers
import polars as pl
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from phoneops.numbers.normalize import Normalized, normalize, normalize_column

REGION = "GB"
MIX = [("GB", 40), ("US", 12), ("FR", 8), ("DE", 8), ("IN", 8), ("BR", 6), ("NG", 5), ("ZA", 5), ("IT", 4),
       ("ES", 4)]
JUNK = ["", None, "{{phoneNumber}}", "n/a", "unknown", "123", "call me", "+", "-", "tel:"]


def _templates() -> dict[str, list[phonenumbers.PhoneNumber]]:
    out: dict[str, list[phonenumbers.PhoneNumber]] = {}
    for region, _ in MIX:
        kinds = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE)
        out[region] = [n for k in kinds if (n := phonenumbers.example_number_for_type(region, k)) is not None]
    return out


def _number(rng: random.Random, templates: dict[str, list[phonenumbers.PhoneNumber]]) -> tuple[str, str, str]:
    """(region, country code, national significant number) with a random 6-digit tail."""
    region = rng.choices([r for r, _ in MIX], weights=[w for _, w in MIX])[0]
    base = rng.choice(templates[region])
    nsn = phonenumbers.national_significant_number(base)
    keep = max(1, len(nsn) - 6)
    tail = "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
    return region, str(base.country_code), nsn[:keep] + tail


def _write(rng: random.Random, region: str, cc: str, nsn: str, shape: int | None = None) -> str:
    """One writing of a number; `shape` picks a fixed one (a source keeps its format)."""
    e164 = f"+{cc}{nsn}"
    shapes = [e164, f"+{cc} {nsn[:4]} {nsn[4:]}", f"00{cc} {nsn[:4]} {nsn[4:]}", f"{cc}{nsn}", f"tel:{e164}"]
    if region == REGION:
        shapes += [f"0{nsn}", f"0{nsn[:4]} {nsn[4:]}", f"+{cc} (0) {nsn[:4]} {nsn[4:]}",
                   f" 0{nsn[:4]}-{nsn[4:7]}-{nsn[7:]} ", f"0{nsn[:4]}.{nsn[4:]}"]
    return shapes[shape % len(shapes)] if shape is not None else rng.choice(shapes)


def build(rows: int, distinct: bool, seed: int) -> list[str | None]:
    """Mixed: a pool of rows/5 numbers, each with a home writing used for 85% of its rows."""
    rng = random.Random(seed)
    templates = _templates()
    pool = [(*_number(rng, templates), rng.randrange(10)) for _ in range(rows if distinct else max(1, rows // 5))]
    out: list[str | None] = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.02:
            out.append(rng.choice(JUNK))
        elif roll < 0.05:
            out.append("".join(rng.choice("0123456789") for _ in range(rng.randint(6, 14))))
        else:
            region, cc, nsn, home = pool[i] if distinct else rng.choice(pool)
            out.append(_write(rng, region, cc, nsn, home if rng.random() < 0.85 else None))
    return out


def naive(values: list[str | None]) -> float:
    """rows/s of parse + is_valid + format, one row at a time."""
    start = time.perf_counter()
    for value in values:
        if value is None:
            continue
        try:
            number = phonenumbers.parse(value, REGION)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return len(values) / (time.perf_counter() - start)


def bulk(values: list[str | None]) -> tuple[float, pl.DataFrame]:
    column = pl.Series("phone", values, dtype=pl.String)
    start = time.perf_counter()
    result = normalize_column(column, REGION)
    return len(values) / (time.perf_counter() - start), result


def _same(single: Normalized, row: tuple[object, ...]) -> bool:
    return (single.e164, single.reason.value if single.reason else None, single.country) == row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    warm = build(2_000, True, args.seed + 1)
    normalize_column(pl.Series(warm, dtype=pl.String), REGION)
    naive(warm)
    figures: dict[str, object] = {"bench": "normalize", "rows": args.rows}
    for label, distinct in (("mixed", False), ("distinct", True)):
        values = build(args.rows, distinct, args.seed)
        sample = rng.sample(values, min(args.naive_sample, len(values)))
        distinct_raw = len(set(values))
        fast, result = bulk(values)
        slow = naive(sample)
        ok = result["e164"].is_not_null().sum()
        checked = rng.sample(range(len(values)), min(10_000, len(values)))
        agree = sum(_same(normalize(values[i], REGION), result.row(i)) for i in checked)
        print(f"[{label}] {args.rows:,} rows, {distinct_raw:,} distinct raw values, {ok:,} valid; "
              f"bulk == normalize() on {agree:,}/{len(checked):,} sampled rows")
        print(f"[{label}]   bulk normalize_column: {fast:>12,.0f} rows/s")
        print(f"[{label}]   naive per-row        : {slow:>12,.0f} rows/s (timed on {len(sample):,} sampled rows)")
        print(f"[{label}]   ratio                : {fast / slow:>12.1f}x")
        prefix = "" if label == "mixed" else "distinct_"
        figures.update({
            f"{prefix}rows_per_s": round(fast),
            f"{prefix}naive_rows_per_s": round(slow),
            f"{prefix}ratio_vs_naive": round(fast / slow, 1),
        })
    figures["naive_sample_rows"] = min(args.naive_sample, args.rows)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
