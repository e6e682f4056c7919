//! A CSV file opened for streaming: plain or gzip, header checked, one reused row buffer.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

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
        let inner: Box<dyn Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
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
        };
        let headers = match table.reader.headers() {
            Ok(h) => h.iter().map(|name| name.trim().to_string()).collect(),
            Err(e) => return Err(table.csv_error(e)),
        };
        table.headers = headers;
        table.check_headers()?;
        Ok(table)
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
        match self.reader.read_record(&mut self.record) {
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

    /// The line where the current row starts (the header is line 1).
    pub(crate) fn line(&self) -> u64 {
        self.record.position().map_or(0, |p| p.line())
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

    fn csv_error(&mut self, e: csv::Error) -> SourceError {
        let line = e
            .position()
            .map_or_else(|| self.reader.position().line(), |p| p.line());
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
                    format!("bad gzip data near line {line}: {io}")
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
