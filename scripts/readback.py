#!/usr/bin/env python3
"""Reads a trade dataset back with pyarrow, independently of the Rust writer that made it.

    scripts/readback.py DIR                  every row, one JSON object a line
    scripts/readback.py DIR --schema         each file's path and column types, one a line
    scripts/readback.py DIR --expect FILE    compares the rows with FILE's (JSON lines); exit 1
                                             and the first difference if they differ

DIR is a dataset in the Hive layout (DIR/venue=V/pair=P/date=YYYY-MM-DD/trades.parquet); the
partitions become the `venue`, `pair` and `date` columns, as any Hive-aware reader makes them.
Each file is read with its own schema (venues differ: seconds or milliseconds, their decimals'
scales, extra columns). Rows come file by file in path order, and in each file in its order.

A row: venue, pair, date (YYYY-MM-DD); trade_id; time as ISO 8601 UTC at the column's
resolution (2024-03-05T00:00:00.123Z for milliseconds, 2024-03-05T00:00:00Z for seconds);
side; price, amount, total as decimal strings with every digit of their scale (never through a
float); and the file's other columns as they are (first_trade_id, last_trade_id: an int or
null). Run it with the environment scripts/py-env makes.
"""

import argparse
import datetime
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.dataset as ds

PARTITIONS = pa.schema([("venue", pa.string()), ("pair", pa.string()), ("date", pa.date32())])


def fragments(root):
    dataset = ds.dataset(
        root, format="parquet", partitioning=ds.partitioning(PARTITIONS, flavor="hive")
    )
    return sorted(dataset.get_fragments(), key=lambda f: f.path)


def cell(value, field):
    if value is None:
        return None
    if pa.types.is_timestamp(field.type):
        if field.type.tz != "UTC":
            raise SystemExit(f"{field.name}: time zone {field.type.tz!r}, not UTC")
        text = value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        if field.type.unit == "ms":
            text += ".%03d" % (value.microsecond // 1000)
        elif field.type.unit != "s":
            raise SystemExit(f"{field.name}: unit {field.type.unit}, not s or ms")
        return text + "Z"
    if isinstance(value, decimal.Decimal):
        # Plain notation with every digit of the scale: str() would write 0E-16.
        return format(value, "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def rows(root):
    for fragment in fragments(root):
        keys = ds.get_partition_keys(fragment.partition_expression)
        missing = {"venue", "pair", "date"} - set(keys)
        if missing:
            raise SystemExit(f"{fragment.path}: no {', '.join(sorted(missing))} partition")
        table = fragment.to_table(schema=fragment.physical_schema)
        fields = list(table.schema)
        for values in zip(*(column.to_pylist() for column in table.columns)):
            row = {
                "venue": keys["venue"],
                "pair": keys["pair"],
                "date": keys["date"].isoformat(),
            }
            for field, value in zip(fields, values):
                row[field.name] = cell(value, field)
            yield row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--schema", action="store_true", help="print each file's column types")
    parser.add_argument("--expect", metavar="FILE", help="compare the rows with FILE's")
    args = parser.parse_args()
    if args.schema:
        for fragment in fragments(args.dir):
            fields = [[f.name, str(f.type), f.nullable] for f in fragment.physical_schema]
            print(json.dumps({"file": fragment.path, "fields": fields}))
        return 0
    if args.expect:
        with open(args.expect) as f:
            expected = [json.loads(line) for line in f if line.strip()]
        got = list(rows(args.dir))
        for i, (a, b) in enumerate(zip(got, expected)):
            if a != b:
                print(f"row {i} differs:\n  read     {json.dumps(a, sort_keys=True)}\n"
                      f"  expected {json.dumps(b, sort_keys=True)}")
                return 1
        if len(got) != len(expected):
            print(f"{len(got)} rows read, {len(expected)} expected")
            return 1
        print(f"{len(got)} rows, as expected")
        return 0
    for row in rows(args.dir):
        print(json.dumps(row, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
