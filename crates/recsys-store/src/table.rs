//! A CSV file opened for streaming: plain or gzip, header checked, one reused row buffer.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use csv::StringRecord;
use recsys_features::{ExternalId, SourceError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUFFER_BYTES: usize = 1 << 16;

/// One open CSV file. Rows are read into a single reused [`StringRecord`].
pub(crate) struct Table {
    reader: csv::Reader<Box<dyn Read>>,
    /// The current row (valid after [`Table::advance`] returned `Some(Ok(()))`).
    pub(crate) record: StringRecord,
    /// The file as shown in error locations.
    pub(crate) label: String,
    /// Header names, trimmed.
    pub(crate) headers: Vec<String>,
    gzip: bool,
    done: bool,
    /// What the [`Tracked`] reader learnt about the bytes read so far.
    tracking: Arc<Mutex<Tracking>>,
    /// The line where the current row starts.
    line: u64,
}

impl Table {
    /// Opens `path` (gzip is recognised by its magic bytes; a `.gz` name without them is an
    /// error), reads the header and checks that names are non-empty and unique.
    pub(crate) fn open(path: &Path) -> Result<Table, SourceError> {
        let label = path.display().to_string();
        let io_error = |e: std::io::Error| {
            SourceError::new(label.clone(), format!("cannot open file: {e}")).with_source(e)
        };
        let file = File::open(path).map_err(io_error)?;
        let mut buffered = BufReader::with_capacity(BUFFER_BYTES, file);
        let gzip = buffered
            .fill_buf()
            .map_err(io_error)?
            .starts_with(&GZIP_MAGIC);
        let named_gz = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        if named_gz && !gzip {
            return Err(SourceError::new(
                label,
                "bad gzip: the file is named .gz but does not start with the gzip magic bytes",
            ));
        }
        let tracking = Arc::new(Mutex::new(Tracking::default()));
        let inner: Box<dyn Read> = if gzip {
            Box::new(Tracked::new(GzipMembers::new(buffered), tracking.clone()))
        } else {
            Box::new(Tracked::new(buffered, tracking.clone()))
        };
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(inner);
        let mut table = Table {
            reader,
            record: StringRecord::new(),
            label,
            headers: Vec::new(),
            gzip,
            done: false,
            tracking,
            line: 1,
        };
        let headers = match table.reader.headers() {
            Ok(h) => h.iter().map(|name| name.trim().to_string()).collect(),
            Err(e) => return Err(table.csv_error(e)),
        };
        table.next_line();
        if let Some(e) = table.open_quote_error() {
            return Err(e);
        }
        table.headers = headers;
        table.check_headers()?;
        Ok(table)
    }

    /// Moves [`Table::line`] to the start of the record just read.
    fn next_line(&mut self) {
        let mut tracking = self.tracking();
        if let Some(line) = tracking.starts.pop_front() {
            drop(tracking);
            self.line = line;
        }
    }

    fn tracking(&self) -> std::sync::MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error for a record that holds a quote never closed (it swallowed the rest of
    /// the file); ends the table.
    fn open_quote_error(&mut self) -> Option<SourceError> {
        let (start, quote) = self.tracking().open_quote?;
        if start != self.line {
            return None;
        }
        self.done = true;
        let last = self.tracking().line;
        let row = if start == quote {
            String::new()
        } else {
            format!(" (in the row starting on line {start})")
        };
        let message = format!(
            "unterminated quote: the quoted field opened on line {quote}{row} is never closed, \
             so lines {quote}-{last} would be read as one field; close or escape the quote \
             (a quote inside a quoted field is written \"\")"
        );
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "unterminated quote");
        Some(SourceError::new(format!("{}:{quote}", self.label), message).with_source(source))
    }

    fn check_headers(&self) -> Result<(), SourceError> {
        for (i, name) in self.headers.iter().enumerate() {
            if name.is_empty() {
                return Err(SourceError::new(
                    self.header_location(),
                    format!("column {} of the header has an empty name", i + 1),
                ));
            }
            if let Some(j) = self.headers[..i].iter().position(|n| n == name) {
                return Err(SourceError::new(
                    self.header_location(),
                    format!(
                        "duplicate column name {name:?} (columns {} and {})",
                        j + 1,
                        i + 1
                    ),
                ));
            }
        }
        Ok(())
    }

    fn header_location(&self) -> String {
        format!("{}:1", self.label)
    }

    /// The index of a column, if present.
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The index of a required column.
    pub(crate) fn require(&self, name: &str) -> Result<usize, SourceError> {
        self.column(name).ok_or_else(|| {
            SourceError::new(
                self.header_location(),
                format!(
                    "missing required column {name:?} (found: {})",
                    self.headers.join(", ")
                ),
            )
        })
    }

    /// Refuses any column not in `allowed`.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), SourceError> {
        match self.headers.iter().find(|h| !allowed.contains(&h.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(SourceError::new(
                self.header_location(),
                format!(
                    "unexpected column {unknown:?} (allowed: {})",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// Every column not listed in `schema_columns`, with its name (the attribute columns).
    pub(crate) fn other_columns(&self, schema_columns: &[Option<usize>]) -> Vec<(usize, String)> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(i, _)| !schema_columns.contains(&Some(*i)))
            .map(|(i, name)| (i, name.clone()))
            .collect()
    }

    /// Reads the next row into [`Table::record`]; `None` at the end of the file or after an
    /// error that makes the rest unreadable (I/O, gzip).
    pub(crate) fn advance(&mut self) -> Option<Result<(), SourceError>> {
        if self.done {
            return None;
        }
        let result = self.reader.read_record(&mut self.record);
        if matches!(&result, Ok(true))
            || result
                .as_ref()
                .is_err_and(|e| matches!(e.kind(), csv::ErrorKind::Utf8 { .. }))
        {
            self.next_line();
        }
        if result.is_ok() {
            if let Some(e) = self.open_quote_error() {
                return Some(Err(e));
            }
        }
        match result {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) if self.record.len() != self.headers.len() => Some(Err(SourceError::new(
                format!("{}:{}", self.label, self.line()),
                format!(
                    "row has {} fields but the header has {}",
                    self.record.len(),
                    self.headers.len()
                ),
            ))),
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(self.csv_error(e))),
        }
    }

    /// The line where the current row starts (the first line of the file is line 1; blank
    /// lines count).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The current row as one line of CSV text (fields quoted where needed), for rejects
    /// files.
    #[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
    pub(crate) fn raw_row(&self) -> String {
        let mut line = String::new();
        for (i, field) in self.record.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            if field.contains([',', '"', '\n', '\r']) {
                line.push('"');
                line.push_str(&field.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(field);
            }
        }
        line
    }

    /// The trimmed text of a cell of the current row; `None` when empty.
    pub(crate) fn cell(&self, column: usize) -> Option<&str> {
        self.record
            .get(column)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// An error about a cell of the current row: `file:line column name`.
    pub(crate) fn cell_error(&self, column: usize, message: String) -> SourceError {
        SourceError::new(
            format!(
                "{}:{} column {}",
                self.label,
                self.line(),
                self.headers[column]
            ),
            message,
        )
    }

    /// A required id cell.
    pub(crate) fn id(&self, column: usize) -> Result<ExternalId, SourceError> {
        match self.cell(column) {
            Some(text) => Ok(parse_id(text)),
            None => Err(self.cell_error(column, format!("missing {}", self.headers[column]))),
        }
    }

    /// An optional finite number cell (`None` when the column is absent or the cell empty).
    pub(crate) fn number<T>(&self, column: Option<usize>) -> Result<Option<T>, SourceError>
    where
        T: std::str::FromStr + Copy + Into<f64>,
    {
        let Some(column) = column else {
            return Ok(None);
        };
        let Some(text) = self.cell(column) else {
            return Ok(None);
        };
        let name = &self.headers[column];
        match text.parse::<T>() {
            Ok(v) if v.into().is_finite() => Ok(Some(v)),
            Ok(_) => Err(self.cell_error(
                column,
                format!("invalid {name} {text:?}: must be a finite number"),
            )),
            Err(_) => {
                Err(self.cell_error(column, format!("invalid {name} {text:?}: not a number")))
            }
        }
    }

    /// An optional finite number cell that must not be negative; `what` names it in the error.
    pub(crate) fn non_negative<T>(
        &self,
        column: Option<usize>,
        what: &str,
    ) -> Result<Option<T>, SourceError>
    where
        T: std::str::FromStr + Copy + Into<f64>,
    {
        match (column, self.number::<T>(column)?) {
            (Some(column), Some(v)) if v.into() < 0.0 => Err(self.cell_error(
                column,
                format!(
                    "invalid {what} {:?}: must be >= 0",
                    self.cell(column).unwrap_or("")
                ),
            )),
            (_, v) => Ok(v),
        }
    }

    fn csv_error(&mut self, e: csv::Error) -> SourceError {
        let line = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => self.line,
            // Where the data broke: the last line read so far.
            _ => self.tracking().line,
        };
        match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => {
                let column = self
                    .headers
                    .get(err.field())
                    .map_or_else(|| format!("{}", err.field() + 1), Clone::clone);
                SourceError::new(
                    format!("{}:{line} column {column}", self.label),
                    format!("invalid UTF-8 (valid up to byte {})", err.valid_up_to()),
                )
            }
            csv::ErrorKind::Io(io) => {
                self.done = true;
                let message = if self.gzip {
                    format!("corrupt gzip file (the error is after line {line}): {io}")
                } else {
                    format!("read failed near line {line}: {io}")
                };
                SourceError::new(self.label.clone(), message).with_source(e)
            }
            _ => {
                self.done = true;
                SourceError::new(format!("{}:{line}", self.label), e.to_string()).with_source(e)
            }
        }
    }
}

/// What [`Tracked`] shares with its [`Table`].
#[derive(Debug, Default)]
struct Tracking {
    /// The lines where the records read ahead start, oldest first.
    starts: VecDeque<u64>,
    /// At the end of the file, if a quoted field was still open: (the line its record
    /// starts on, the line of the opening quote).
    open_quote: Option<(u64, u64)>,
    /// The line of the last byte read.
    line: u64,
}

/// Where [`Tracked`] is in the CSV grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    StartRecord,
    StartField,
    InField,
    InQuoted,
    QuoteInQuoted,
}

/// Follows the CSV structure of the bytes as the `csv` reader pulls them, with the same
/// rules as its default configuration (a `"` opens a quoted field only at the start of a
/// field, `""` inside one is a quote, CR, LF and CRLF end a record, blank lines are
/// skipped), to know the line every record starts on (the `csv` crate's positions do not
/// count the blank lines before a record) and whether the file ends inside a quoted field
/// (which the `csv` crate silently accepts as one long field).
struct Tracked<R> {
    inner: R,
    tracking: Arc<Mutex<Tracking>>,
    scan: Scan,
    line: u64,
    record_line: u64,
    quote_line: u64,
    starts: Vec<u64>,
}

impl<R: Read> Tracked<R> {
    fn new(inner: R, tracking: Arc<Mutex<Tracking>>) -> Tracked<R> {
        Tracked {
            inner,
            tracking,
            scan: Scan::StartRecord,
            line: 1,
            record_line: 1,
            quote_line: 1,
            starts: Vec::new(),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.scan = match (self.scan, b) {
                (Scan::InQuoted, b'"') => Scan::QuoteInQuoted,
                (Scan::InQuoted, b'\n') => {
                    self.line += 1;
                    Scan::InQuoted
                }
                (Scan::InQuoted, _) => Scan::InQuoted,
                (Scan::StartRecord, b'\r') => Scan::StartRecord,
                (Scan::StartRecord, b'\n') => {
                    self.line += 1;
                    Scan::StartRecord
                }
                (Scan::StartRecord, _) => {
                    self.record_line = self.line;
                    self.starts.push(self.line);
                    self.field_start(b)
                }
                (Scan::StartField, _) => self.field_start(b),
                (Scan::QuoteInQuoted, b'"') => Scan::InQuoted,
                (Scan::InField | Scan::QuoteInQuoted, b',') => Scan::StartField,
                (Scan::InField | Scan::QuoteInQuoted, b'\r') => Scan::StartRecord,
                (Scan::InField | Scan::QuoteInQuoted, b'\n') => {
                    self.line += 1;
                    Scan::StartRecord
                }
                (Scan::InField | Scan::QuoteInQuoted, _) => Scan::InField,
            };
        }
    }

    /// The state after the first byte of a field.
    fn field_start(&mut self, b: u8) -> Scan {
        match b {
            b'"' => {
                self.quote_line = self.line;
                Scan::InQuoted
            }
            b',' => Scan::StartField,
            b'\r' => Scan::StartRecord,
            b'\n' => {
                self.line += 1;
                Scan::StartRecord
            }
            _ => Scan::InField,
        }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n]);
        let mut tracking = self.tracking.lock().unwrap_or_else(PoisonError::into_inner);
        tracking.starts.extend(self.starts.drain(..));
        tracking.line = self.line;
        if n == 0 && !buf.is_empty() && self.scan == Scan::InQuoted {
            tracking.open_quote = Some((self.record_line, self.quote_line));
        }
        Ok(n)
    }
}

/// The members of a gzip file, one after the other, with clear errors: a stream that ends
/// inside a member is *truncated*, bytes after the last member that are not another member
/// are *trailing data* (flate2's `MultiGzDecoder` reports both as a bare "unexpected end of
/// file" or "invalid gzip header"). Trailing data is an error, not ignored: it means the
/// file was damaged or appended to, and rows may be missing.
struct GzipMembers {
    decoder: Option<flate2::bufread::GzDecoder<BufReader<File>>>,
    members: u64,
}

impl GzipMembers {
    fn new(inner: BufReader<File>) -> GzipMembers {
        GzipMembers {
            decoder: Some(flate2::bufread::GzDecoder::new(inner)),
            members: 1,
        }
    }
}

impl Read for GzipMembers {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            match decoder.read(buf) {
                Ok(0) if !buf.is_empty() => {}
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.decoder = None;
                    let member = if self.members > 1 {
                        format!(" (member {})", self.members)
                    } else {
                        String::new()
                    };
                    let message = match e.kind() {
                        ErrorKind::UnexpectedEof => format!(
                            "the gzip stream is truncated{member}: the file ends before the end \
                             of its compressed data ({e})"
                        ),
                        _ => format!("the gzip stream is corrupt{member}: {e}"),
                    };
                    return Err(Error::new(e.kind(), message));
                }
            }
            // The member ended (its checksum matched): another member, or the end.
            let mut inner = self
                .decoder
                .take()
                .map(|d| d.into_inner())
                .expect("decoder");
            let rest = inner.fill_buf()?;
            if rest.is_empty() {
                return Ok(0);
            }
            if !rest.starts_with(&GZIP_MAGIC) {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "trailing data after the end of the gzip stream (after {} complete \
                         member(s), bytes that are not another gzip member): the file is \
                         damaged or something was appended to it",
                        self.members
                    ),
                ));
            }
            self.members += 1;
            self.decoder = Some(flate2::bufread::GzDecoder::new(inner));
        }
    }
}

/// [`ExternalId::parse`] for trimmed text, without allocating for canonical integers.
pub(crate) fn parse_id(text: &str) -> ExternalId {
    let bytes = text.as_bytes();
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if canonical {
        if let Ok(v) = text.parse::<i64>() {
            return ExternalId::Int(v);
        }
    }
    ExternalId::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_match_external_id_parse() {
        for text in [
            "0",
            "-0",
            "42",
            "-7",
            "042",
            "+1",
            "P-1",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1e3",
            "-",
        ] {
            assert_eq!(parse_id(text), ExternalId::parse(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn ids_match_external_id_parse_for_any_text(text in "-?[0-9+a-z]{0,21}") {
            let t = text.trim();
            prop_assert_eq!(parse_id(t), ExternalId::parse(t));
        }
    }
}
