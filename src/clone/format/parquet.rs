//! Apache Parquet, through the Arrow project's writer: typed columns, one row a trade.
//!
//! | column | type | from |
//! |---|---|---|
//! | `trade_id` | int64, not null | `trade_id` |
//! | `time` | timestamp in milliseconds, UTC, not null | `time_ms` (a venue of milliseconds) or `date` (of seconds, [`Resolution`]) |
//! | `side` | string, not null (`buy`, `sell`; dictionary-encoded in the file) | `type` |
//! | `price`, `amount`, `total` | decimal128(38, the venue's [`Scales`]), not null | `rate`, `amount`, `total`, parsed exactly |
//! | `first_trade_id`, `last_trade_id` | int64, nullable; only for venues that aggregate ([`Columns::trade_id_range`]) | the same fields |
//!
//! Parquet has no timestamp of seconds (its units are milli-, micro- and nanoseconds; the Arrow
//! writer would store seconds as a bare int64, a time only to Arrow readers): a venue of
//! seconds is stored in milliseconds, each a whole second.
//!
//! zstd, statistics per row group and page (readers skip what a filter excludes), row groups
//! of at most [`ROW_GROUP_ROWS`] trades, written as they fill: memory holds one row group and
//! one batch, never a whole day. The same rows give the same bytes: `created_by` is fixed and
//! nothing in the metadata depends on the time or the machine.
//!
//! It must never carry a decimal through a float, nor round one: a value with more digits after
//! the point than its scale is an error. A file is written whole or not at all (no resume
//! point): the footer, written last, is what makes it a Parquet file.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::clone::format::{
    side, Columns, Counting, Encoder, Format, FormatError, Resolution, Scales, Written,
};
use crate::domain::decimal;
use crate::proto::ClonedEntry;

/// Trades per row group at most: a busy day (a few million) is a few dozen groups, and one
/// group in memory is a few megabytes encoded.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Trades gathered before they are handed to the writer as one batch.
const BATCH_ROWS: usize = 8 * 1024;

/// Decimal128's widest: every scale fits, and a value's integer digits are 38 − scale.
pub const PRECISION: u8 = 38;

/// Fixed, so that the same rows give the same file whatever built it.
const CREATED_BY: &str = "cloner-worker";

/// zstd's default level: most of the ratio, little of the time.
const ZSTD_LEVEL: i32 = 3;

/// The Arrow schema of a venue's trades.
pub fn schema(columns: &Columns) -> SchemaRef {
    let time = TimeUnit::Millisecond;
    let decimal = |scale: u8| DataType::Decimal128(PRECISION, scale as i8);
    let Scales {
        price,
        amount,
        total,
    } = columns.scales;
    let mut fields = vec![
        Field::new("trade_id", DataType::Int64, false),
        Field::new("time", DataType::Timestamp(time, Some("UTC".into())), false),
        Field::new("side", DataType::Utf8, false),
        Field::new("price", decimal(price), false),
        Field::new("amount", decimal(amount), false),
        Field::new("total", decimal(total), false),
    ];
    if columns.trade_id_range {
        fields.push(Field::new("first_trade_id", DataType::Int64, true));
        fields.push(Field::new("last_trade_id", DataType::Int64, true));
    }
    Arc::new(Schema::new(fields))
}

/// Trades gathered for the next batch, column by column.
#[derive(Default)]
struct Batch {
    trade_id: Vec<i64>,
    time: Vec<i64>,
    side: Vec<&'static str>,
    price: Vec<i128>,
    amount: Vec<i128>,
    total: Vec<i128>,
    first_trade_id: Vec<Option<i64>>,
    last_trade_id: Vec<Option<i64>>,
}

/// Trades as a Parquet file to `W`.
pub struct ParquetEncoder<W: Write + Send> {
    writer: ArrowWriter<Counting<W>>,
    schema: SchemaRef,
    columns: Columns,
    batch: Batch,
    trades: u64,
}

impl<W: Write + Send> ParquetEncoder<W> {
    /// A new file of `columns`, row groups of [`ROW_GROUP_ROWS`].
    pub fn new(writer: W, columns: &Columns) -> Result<Self, FormatError> {
        ParquetEncoder::with_row_groups_of(writer, columns, ROW_GROUP_ROWS)
    }

    /// A new file whose row groups hold at most `rows` trades.
    pub fn with_row_groups_of(
        writer: W,
        columns: &Columns,
        rows: usize,
    ) -> Result<Self, FormatError> {
        let properties = WriterProperties::builder()
            .set_created_by(CREATED_BY.into())
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(rows.max(1)))
            .build();
        let schema = schema(columns);
        let writer =
            ArrowWriter::try_new(Counting::new(writer, 0), schema.clone(), Some(properties))?;
        Ok(ParquetEncoder {
            writer,
            schema,
            columns: *columns,
            batch: Batch::default(),
            trades: 0,
        })
    }

    /// Hands the gathered trades to the writer, which closes a row group whenever one fills.
    fn write_batch(&mut self) -> Result<(), FormatError> {
        if self.batch.trade_id.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.batch);
        let Scales {
            price,
            amount,
            total,
        } = self.columns.scales;
        let decimals = |values: Vec<i128>, scale: u8| -> Result<ArrayRef, FormatError> {
            Ok(Arc::new(
                Decimal128Array::from(values).with_precision_and_scale(PRECISION, scale as i8)?,
            ))
        };
        let time: ArrayRef = Arc::new(TimestampMillisecondArray::from(b.time).with_timezone("UTC"));
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(b.trade_id)),
            time,
            Arc::new(StringArray::from(b.side)),
            decimals(b.price, price)?,
            decimals(b.amount, amount)?,
            decimals(b.total, total)?,
        ];
        if self.columns.trade_id_range {
            arrays.push(Arc::new(Int64Array::from(b.first_trade_id)));
            arrays.push(Arc::new(Int64Array::from(b.last_trade_id)));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.writer.write(&batch)?;
        Ok(())
    }
}

/// `value` (the trade's `field`) at `scale`, exactly.
fn scaled(
    e: &ClonedEntry,
    field: &'static str,
    value: &str,
    scale: u8,
) -> Result<i128, FormatError> {
    decimal::to_scaled(value, scale, PRECISION).map_err(|problem| FormatError::Decimal {
        trade_id: e.trade_id,
        field,
        value: value.to_string(),
        problem,
    })
}

impl<W: Write + Send> Encoder<W> for ParquetEncoder<W> {
    fn write(&mut self, e: &ClonedEntry) -> Result<(), FormatError> {
        let scales = self.columns.scales;
        // Every value is checked before any is kept: a refused trade leaves no half row.
        let time = match self.columns.time {
            // Within i64 for every second of the wire's range (years ±292 million).
            Resolution::Seconds => e.date.saturating_mul(1000),
            Resolution::Milliseconds => e.time_ms.ok_or(FormatError::Missing {
                trade_id: e.trade_id,
                field: "time_ms",
                format: Format::Parquet,
            })?,
        };
        let price = scaled(e, "rate", &e.rate, scales.price)?;
        let amount = scaled(e, "amount", &e.amount, scales.amount)?;
        let total = scaled(e, "total", &e.total, scales.total)?;
        let b = &mut self.batch;
        b.trade_id.push(e.trade_id);
        b.time.push(time);
        b.side.push(side(e));
        b.price.push(price);
        b.amount.push(amount);
        b.total.push(total);
        if self.columns.trade_id_range {
            b.first_trade_id.push(e.first_trade_id);
            b.last_trade_id.push(e.last_trade_id);
        }
        self.trades += 1;
        if b.trade_id.len() >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Only what the writer has passed on: closing a row group here would cut them small.
        self.writer.sync()
    }

    fn resume_point(&self) -> Option<u64> {
        None
    }

    fn trades(&self) -> u64 {
        self.trades
    }

    fn finish(mut self: Box<Self>) -> Result<(W, Written), FormatError> {
        self.write_batch()?;
        let mut counting = self.writer.into_inner()?;
        counting.flush()?;
        let written = Written {
            trades: self.trades,
            bytes: counting.bytes,
        };
        Ok((counting.inner, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decimal::{format_at_scale, ScaleError};
    use crate::proto::cloned_entry;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Int64Type};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;

    /// 2024-03-05 00:00:00 UTC, in milliseconds.
    const DAY_MS: i64 = 1_709_596_800_000;

    fn binance(n: i64) -> ClonedEntry {
        let ms = DAY_MS + n * 7;
        ClonedEntry {
            trade_id: 3_000_000_000 + n,
            date: ms.div_euclid(1000),
            r#type: (n % 2) as i32,
            rate: format!("65{n:03}.12345678"),
            amount: "0.00012345".into(),
            total: decimal::multiply(&format!("65{n:03}.12345678"), "0.00012345").unwrap(),
            time_ms: Some(ms),
            first_trade_id: Some(6_000_000_000 + 2 * n),
            last_trade_id: (n % 3 != 0).then_some(6_000_000_001 + 2 * n),
        }
    }

    fn poloniex(n: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: 45_205_037 + n,
            date: 1_540_220_637 + n,
            r#type: cloned_entry::Type::Sell as i32,
            rate: "0.03143485".into(),
            amount: "12".into(),
            total: "0.3772182".into(),
            ..Default::default()
        }
    }

    fn encode(columns: &Columns, rows: usize, entries: &[ClonedEntry]) -> Vec<u8> {
        let mut encoder =
            Box::new(ParquetEncoder::with_row_groups_of(Vec::new(), columns, rows).unwrap());
        for e in entries {
            encoder.write(e).unwrap();
        }
        let (bytes, written) = encoder.finish().unwrap();
        assert_eq!(written.trades, entries.len() as u64);
        assert_eq!(written.bytes, bytes.len() as u64);
        bytes
    }

    /// Every row read back, decimals as strings at their scale.
    fn read_back(bytes: Vec<u8>) -> (SchemaRef, Vec<Vec<String>>) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let schema = builder.schema().clone();
        let reader = builder.build().unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            for row in 0..batch.num_rows() {
                let cell = |column: &ArrayRef| -> String {
                    if column.is_null(row) {
                        return "null".into();
                    }
                    match column.data_type() {
                        DataType::Decimal128(_, scale) => format_at_scale(
                            column.as_primitive::<Decimal128Type>().value(row),
                            *scale as u8,
                        ),
                        DataType::Utf8 => column.as_string::<i32>().value(row).into(),
                        DataType::Timestamp(TimeUnit::Millisecond, _) => column
                            .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                            .value(row)
                            .to_string(),
                        _ => column.as_primitive::<Int64Type>().value(row).to_string(),
                    }
                };
                rows.push(batch.columns().iter().map(cell).collect());
            }
        }
        (schema, rows)
    }

    #[test]
    fn binance_trades_round_trip_exactly_with_milliseconds_and_16_decimal_totals() {
        let entries: Vec<ClonedEntry> = (0..2500).map(binance).collect();
        let bytes = encode(&Columns::BINANCE, 1000, &entries);
        let (schema, rows) = read_back(bytes);
        assert_eq!(schema, super::schema(&Columns::BINANCE));
        assert_eq!(
            schema.field_with_name("time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(rows.len(), entries.len());
        for (row, e) in rows.iter().zip(&entries) {
            let at =
                |s: &str, scale| format_at_scale(decimal::to_scaled(s, scale, 38).unwrap(), scale);
            let id = |id: Option<i64>| id.map_or("null".into(), |id| id.to_string());
            assert_eq!(
                row,
                &[
                    e.trade_id.to_string(),
                    e.time_ms.unwrap().to_string(),
                    side(e).to_string(),
                    at(&e.rate, 8),
                    at(&e.amount, 8),
                    at(&e.total, 16),
                    id(e.first_trade_id),
                    id(e.last_trade_id),
                ]
            );
        }
        // The 16th decimal is kept: 65000.12345678 × 0.00012345.
        assert_eq!(rows[0][5], "8.0242652407394910");
    }

    #[test]
    fn poloniex_trades_are_whole_seconds_at_8_decimals_without_the_range() {
        let entries: Vec<ClonedEntry> = (0..3).map(poloniex).collect();
        let (schema, rows) = read_back(encode(&Columns::POLONIEX, ROW_GROUP_ROWS, &entries));
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["trade_id", "time", "side", "price", "amount", "total"]
        );
        assert_eq!(
            rows[1],
            [
                "45205038",
                "1540220638000",
                "sell",
                "0.03143485",
                "12.00000000",
                "0.37721820"
            ]
        );
    }

    #[test]
    fn a_digit_past_the_scale_is_refused_not_rounded() {
        let mut encoder = Box::new(ParquetEncoder::new(Vec::new(), &Columns::POLONIEX).unwrap());
        encoder.write(&poloniex(0)).unwrap();
        let mut bad = poloniex(1);
        bad.total = "0.000000015".into();
        let err = encoder.write(&bad).unwrap_err();
        assert!(
            matches!(
                &err,
                FormatError::Decimal {
                    field: "total",
                    problem: ScaleError::TooPrecise {
                        digits: 9,
                        scale: 8
                    },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "trade 45205038: total \"0.000000015\" has 9 digits after the point, more than the scale of 8 holds"
        );
        bad.total = "1e-8".into();
        assert!(encoder.write(&bad).is_err());
        // Nothing of the refused trades was kept.
        assert_eq!(encoder.trades(), 1);
        let (bytes, _) = encoder.finish().unwrap();
        assert_eq!(read_back(bytes).1.len(), 1);
        // A venue of milliseconds needs them.
        let mut encoder = Box::new(ParquetEncoder::new(Vec::new(), &Columns::BINANCE).unwrap());
        assert!(matches!(
            encoder.write(&poloniex(0)),
            Err(FormatError::Missing {
                field: "time_ms",
                ..
            })
        ));
    }

    #[test]
    fn the_same_rows_give_the_same_bytes_in_bounded_row_groups_with_statistics() {
        let entries: Vec<ClonedEntry> = (0..2500).map(binance).collect();
        let first = encode(&Columns::BINANCE, 1000, &entries);
        assert_eq!(first, encode(&Columns::BINANCE, 1000, &entries));
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(first.clone())).unwrap();
        let metadata = reader.metadata();
        assert_eq!(metadata.file_metadata().created_by(), Some(CREATED_BY));
        let groups = metadata.row_groups();
        let sizes: Vec<i64> = groups.iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        for (i, group) in groups.iter().enumerate() {
            let trade_id = group.column(0);
            assert!(matches!(trade_id.compression(), Compression::ZSTD(_)));
            let Some(Statistics::Int64(stats)) = trade_id.statistics() else {
                panic!("trade_id statistics");
            };
            let first_id = 3_000_000_000 + 1000 * i as i64;
            assert_eq!(stats.min_opt(), Some(&first_id));
            assert_eq!(stats.max_opt(), Some(&(first_id + sizes[i] - 1)));
        }
        // Nothing in the file says when or where it was written.
        let text = String::from_utf8_lossy(&first);
        assert!(!text.contains("parquet-rs"));
        // An empty day is a valid file too.
        let (_, rows) = read_back(encode(&Columns::BINANCE, 1000, &[]));
        assert!(rows.is_empty());
    }
}
