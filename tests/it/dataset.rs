//! The dataset writer against an independent reader: days of a Binance-like pair (milliseconds,
//! 16-decimal totals, aggregate id ranges, an empty day) and a Poloniex-like one (whole
//! seconds, 8 decimals) written as Parquet in the Hive layout with their manifests, then read back by
//! pyarrow (`scripts/readback.py`, in the environment `scripts/py-env` makes).
//!
//! What is proved: pyarrow finds every day by its partitions (`venue`, `pair`, `date`), skips
//! the manifests, reads the columns with the types meant (int64, UTC timestamps in
//! milliseconds, decimal128 at the venue's scales, the nullable id range), and returns
//! exactly the rows written, decimals compared as strings with every digit of their scale.
//!
//! Skipped, saying so, only when there is no python3; otherwise it runs (and installs pyarrow
//! into `.run/py` if it is not there).

use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::civil::Date;
use serde_json::{json, Value};

use cloner_worker::clone::dataset::{DayWriter, Manifest, Partition};
use cloner_worker::clone::format::{Columns, Format};
use cloner_worker::domain::decimal;
use cloner_worker::proto::{cloned_entry, ClonedEntry};

pub(crate) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The python of `scripts/py-env`'s environment; `None` when there is no python3 at all.
pub(crate) fn python() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        return None;
    }
    let out = Command::new(repo("scripts/py-env"))
        .output()
        .expect("scripts/py-env runs");
    assert!(
        out.status.success(),
        "scripts/py-env failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    Some(PathBuf::from(
        stdout.lines().last().expect("a python").trim(),
    ))
}

/// `scripts/readback.py DIR ARGS…`'s lines, as JSON.
fn readback(python: &Path, dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(python)
        .arg(repo("scripts/readback.py"))
        .arg(dir)
        .args(args)
        .output()
        .expect("readback.py runs");
    assert!(
        out.status.success(),
        "readback.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A Binance aggregate trade: the total computed as the venue computes it.
fn binance(
    id: i64,
    ms: i64,
    buy: bool,
    price: &str,
    qty: &str,
    ids: Option<(i64, i64)>,
) -> ClonedEntry {
    ClonedEntry {
        trade_id: id,
        date: ms.div_euclid(1000),
        r#type: if buy {
            cloned_entry::Type::Buy
        } else {
            cloned_entry::Type::Sell
        } as i32,
        rate: price.into(),
        amount: qty.into(),
        total: decimal::multiply(price, qty).unwrap(),
        time_ms: Some(ms),
        first_trade_id: ids.map(|r| r.0),
        last_trade_id: ids.map(|r| r.1),
    }
}

fn poloniex(id: i64, date: i64, buy: bool, rate: &str, amount: &str, total: &str) -> ClonedEntry {
    ClonedEntry {
        trade_id: id,
        date,
        r#type: if buy {
            cloned_entry::Type::Buy
        } else {
            cloned_entry::Type::Sell
        } as i32,
        rate: rate.into(),
        amount: amount.into(),
        total: total.into(),
        ..Default::default()
    }
}

/// Writes each day with the dataset writer and records it in the pair's manifest.
fn write_days(
    root: &Path,
    partition: &Partition,
    columns: &Columns,
    days: &[(Date, Vec<ClonedEntry>)],
) {
    let mut manifest = Manifest::load(root, partition).unwrap();
    for (date, entries) in days {
        let mut day = DayWriter::create(root, partition, *date, Format::Parquet, columns).unwrap();
        for e in entries {
            day.write(e).unwrap();
        }
        manifest.record(day.finish().unwrap());
    }
    manifest.save(root).unwrap();
    for (date, _) in days {
        manifest.verify(root, *date).unwrap();
    }
}

#[test]
fn pyarrow_reads_back_exactly_the_rows_written() {
    let Some(python) = python() else {
        eprintln!("dataset::pyarrow_reads_back_exactly_the_rows_written: skipped, python3 is not installed");
        return;
    };
    let root = std::env::temp_dir().join(format!("cloner-dataset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    let date = |y, m, d| Date::new(y, m, d).unwrap();
    // 2024-03-05 00:00:00 UTC, in milliseconds.
    let day_ms = 1_709_596_800_000;
    write_days(
        &root,
        &Partition::new("binance", "BTCUSDT").unwrap(),
        &Columns::BINANCE,
        &[
            (
                date(2024, 3, 5),
                vec![
                    binance(
                        3_000_000_001,
                        day_ms,
                        true,
                        "65000.10000000",
                        "0.00200000",
                        Some((6_000_000_001, 6_000_000_003)),
                    ),
                    binance(
                        3_000_000_002,
                        day_ms + 999,
                        false,
                        "0.00000001",
                        "0.00000001",
                        Some((6_000_000_004, 6_000_000_004)),
                    ),
                    binance(
                        3_000_000_003,
                        day_ms + 86_399_999,
                        true,
                        "99999999.99999999",
                        "12345678.12345678",
                        None,
                    ),
                ],
            ),
            (
                date(2024, 3, 6),
                vec![binance(
                    3_000_000_004,
                    day_ms + 86_400_001,
                    false,
                    "1",
                    "2",
                    Some((0, 0)),
                )],
            ),
            (date(2024, 3, 7), vec![]),
        ],
    );
    // 2018-10-22 00:00:00 UTC.
    let day = 1_540_166_400;
    write_days(
        &root,
        &Partition::new("poloniex", "USDT_BTC").unwrap(),
        &Columns::POLONIEX,
        &[(
            date(2018, 10, 22),
            vec![
                poloniex(
                    45_205_037,
                    day + 54_237,
                    false,
                    "0.03143485",
                    "0.00009034",
                    "0.00000283",
                ),
                poloniex(45_205_038, day + 86_399, true, "6500", "0", "0"),
            ],
        )],
    );

    let b = |d: &str, id: i64, time: &str, side: &str, prices: [&str; 3], ids: [Value; 2]| {
        json!({"venue": "binance", "pair": "BTCUSDT", "date": d, "trade_id": id, "time": time,
            "side": side, "price": prices[0], "amount": prices[1], "total": prices[2],
            "first_trade_id": ids[0], "last_trade_id": ids[1]})
    };
    let p = |id: i64, time: &str, side: &str, prices: [&str; 3]| {
        json!({"venue": "poloniex", "pair": "USDT_BTC", "date": "2018-10-22", "trade_id": id,
            "time": time, "side": side, "price": prices[0], "amount": prices[1],
            "total": prices[2]})
    };
    let expected = vec![
        b(
            "2024-03-05",
            3_000_000_001,
            "2024-03-05T00:00:00.000Z",
            "buy",
            ["65000.10000000", "0.00200000", "130.0002000000000000"],
            [json!(6_000_000_001i64), json!(6_000_000_003i64)],
        ),
        b(
            "2024-03-05",
            3_000_000_002,
            "2024-03-05T00:00:00.999Z",
            "sell",
            ["0.00000001", "0.00000001", "0.0000000000000001"],
            [json!(6_000_000_004i64), json!(6_000_000_004i64)],
        ),
        b(
            "2024-03-05",
            3_000_000_003,
            "2024-03-05T23:59:59.999Z",
            "buy",
            [
                "99999999.99999999",
                "12345678.12345678",
                "1234567812345677.8765432187654322",
            ],
            [Value::Null, Value::Null],
        ),
        b(
            "2024-03-06",
            3_000_000_004,
            "2024-03-06T00:00:00.001Z",
            "sell",
            ["1.00000000", "2.00000000", "2.0000000000000000"],
            [json!(0), json!(0)],
        ),
        p(
            45_205_037,
            "2018-10-22T15:03:57.000Z",
            "sell",
            ["0.03143485", "0.00009034", "0.00000283"],
        ),
        p(
            45_205_038,
            "2018-10-22T23:59:59.000Z",
            "buy",
            ["6500.00000000", "0.00000000", "0.00000000"],
        ),
    ];
    let rows = readback(&python, &root, &[]);
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (row, want) in rows.iter().zip(&expected) {
        assert_eq!(row, want);
    }

    let schemas = readback(&python, &root, &["--schema"]);
    let files: Vec<&str> = schemas
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    let under = |rest: &str| root.join(rest).display().to_string();
    assert_eq!(
        files,
        [
            under("venue=binance/pair=BTCUSDT/date=2024-03-05/trades.parquet"),
            under("venue=binance/pair=BTCUSDT/date=2024-03-06/trades.parquet"),
            under("venue=binance/pair=BTCUSDT/date=2024-03-07/trades.parquet"),
            under("venue=poloniex/pair=USDT_BTC/date=2018-10-22/trades.parquet"),
        ],
        "every day, and no manifest, is a file of the dataset"
    );
    assert_eq!(
        schemas[0]["fields"],
        json!([
            ["trade_id", "int64", false],
            ["time", "timestamp[ms, tz=UTC]", false],
            ["side", "string", false],
            ["price", "decimal128(38, 8)", false],
            ["amount", "decimal128(38, 8)", false],
            ["total", "decimal128(38, 16)", false],
            ["first_trade_id", "int64", true],
            ["last_trade_id", "int64", true],
        ])
    );
    assert_eq!(
        schemas[3]["fields"],
        json!([
            ["trade_id", "int64", false],
            ["time", "timestamp[ms, tz=UTC]", false],
            ["side", "string", false],
            ["price", "decimal128(38, 8)", false],
            ["amount", "decimal128(38, 8)", false],
            ["total", "decimal128(38, 8)", false],
        ])
    );
    std::fs::remove_dir_all(&root).unwrap();
}
