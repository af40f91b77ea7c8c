//! CSV: a header line, then `tradeID,date,type,rate,amount,total`, one trade a line, the API's
//! fields and its UTC dates; through a `csv::Writer`, which quotes per RFC 4180 (upstream
//! strings are not trusted to be plain decimals).
//!
//! It must never change its bytes: files written by earlier versions are continued by this one,
//! and compared byte for byte with uninterrupted runs.

use std::io::Write;

use crate::clone::format::{line_date, side, Counting, Encoder, FormatError, Written};
use crate::proto::ClonedEntry;

/// The header, the API's field names.
const HEADER: [&str; 6] = ["tradeID", "date", "type", "rate", "amount", "total"];

/// Trades as CSV lines to `W`.
pub struct CsvEncoder<W: Write> {
    csv: csv::Writer<Counting<W>>,
    trades: u64,
}

impl<W: Write> CsvEncoder<W> {
    /// A new file: the header is written at once.
    pub fn new(writer: W) -> std::io::Result<Self> {
        let mut csv = csv::Writer::from_writer(Counting::new(writer, 0));
        csv.write_record(HEADER)?;
        Ok(CsvEncoder { csv, trades: 0 })
    }

    /// Appends to a file of `bytes` bytes that has its header already.
    pub fn continuing(writer: W, bytes: u64) -> Self {
        let csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Counting::new(writer, bytes));
        CsvEncoder { csv, trades: 0 }
    }
}

impl<W: Write + Send> Encoder<W> for CsvEncoder<W> {
    fn write(&mut self, e: &ClonedEntry) -> Result<(), FormatError> {
        self.csv
            .serialize((
                e.trade_id,
                line_date(e),
                side(e),
                &e.rate,
                &e.amount,
                &e.total,
            ))
            .map_err(std::io::Error::from)?;
        self.trades += 1;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.csv.flush()
    }

    fn resume_point(&self) -> Option<u64> {
        // What went through the CSV writer's buffer: exact after a flush.
        Some(self.csv.get_ref().bytes)
    }

    fn trades(&self) -> u64 {
        self.trades
    }

    fn finish(self: Box<Self>) -> Result<(W, Written), FormatError> {
        let trades = self.trades;
        let mut counting = self.csv.into_inner().map_err(|e| e.into_error())?;
        counting.flush()?;
        let written = Written {
            trades,
            bytes: counting.bytes,
        };
        Ok((counting.inner, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::cloned_entry;

    fn trade(id: i64) -> ClonedEntry {
        ClonedEntry {
            trade_id: id,
            date: 1_540_220_637,
            r#type: cloned_entry::Type::Sell as i32,
            rate: "0.03143485".into(),
            amount: "0.00009034".into(),
            total: "0.00000283".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_continued_file_is_the_same_bytes_as_one_written_at_once() {
        let mut whole = Box::new(CsvEncoder::new(Vec::new()).unwrap());
        whole.write(&trade(1)).unwrap();
        whole.flush().unwrap();
        let cut = whole.resume_point().unwrap();
        whole.write(&trade(2)).unwrap();
        let (whole, written) = whole.finish().unwrap();
        assert_eq!(written.trades, 2);
        assert_eq!(written.bytes, whole.len() as u64);

        let mut continued = Box::new(CsvEncoder::continuing(whole[..cut as usize].to_vec(), cut));
        continued.write(&trade(2)).unwrap();
        let (bytes, written) = continued.finish().unwrap();
        assert_eq!(bytes, whole);
        assert_eq!(written.bytes, whole.len() as u64);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "tradeID,date,type,rate,amount,total\n\
             1,2018-10-22 15:03:57,sell,0.03143485,0.00009034,0.00000283\n\
             2,2018-10-22 15:03:57,sell,0.03143485,0.00009034,0.00000283\n"
        );
    }
}
