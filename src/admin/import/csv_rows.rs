//! CSV rows, read one at a time straight from the body (with `csv_core`, which leaves every
//! buffer to its caller): a record is held in one reused buffer, and a record with more fields
//! than the header is refused as soon as it has one too many, so no record, however it is
//! made, holds more than its own bytes and one position per header column.

use std::collections::BTreeSet;

use csv_core::{ReadRecordResult, Reader};

use super::{Each, Gives, Row, RowError};
use crate::admin::ApiError;
use crate::admin::devices::NewDevice;
use crate::admin::settings::check_param;
use crate::model::{DeviceState, Mac};
use crate::settings::vocab;

/// The fixed columns, in the order an export writes them. No parameter can be named like one:
/// a parameter's name in lower case without a vendor prefix is one of the vocabulary's
/// (docs/parameters.md), which has none of these (a test keeps it so). `state` came last, after
/// files without it were exported: such a file still imports, keeping each device's state.
pub const FIXED: [&str; 7] = ["mac", "model", "serial", "site", "group", "label", "state"];

/// Most columns a header may have: far more parameters than any phone takes, and a bound on
/// what the header (and each record's field positions) can hold.
pub const MAX_COLUMNS: usize = 4096;

/// The cell that sets a parameter to the empty string, while an empty cell removes it (a device
/// that sets `""` overrides a value of its site, which an absent one does not). No value can be
/// this: a parameter's value never holds `"`. In the file's text it is written `""""""`.
pub const EMPTY_VALUE: &str = "\"\"";

/// The cell of a `secret:NAME` column an export writes for a device that has that secret (and
/// of a parameter column, for a value that carries a login): the value is never exported, and an import reads the cell as the secret named without a value
/// (the device keeps its own; one that has none is reported). An empty cell names nothing, so
/// a device that never had the secret is not reported as lacking it.
pub const SECRET_NOT_EXPORTED: &str = "(not exported)";

#[derive(Debug)]
enum Column {
    Mac,
    Model,
    Serial,
    Site,
    Group,
    Label,
    State,
    Param(String),
    Secret(String),
}

#[derive(Debug)]
struct Header {
    columns: Vec<Column>,
    gives: Gives,
}

/// Reads the records of a body into a reused buffer.
struct Records<'b> {
    rest: &'b [u8],
    core: Reader,
    /// The line the next record starts on.
    line: usize,
    out: Vec<u8>,
    ends: Vec<usize>,
}

/// One record: its first line, then its fields' end positions in the buffer, or `None` when it
/// had more fields than it may.
type Record = (usize, Option<usize>);

impl<'b> Records<'b> {
    fn new(body: &'b [u8]) -> Records<'b> {
        Records {
            // What a spreadsheet's "CSV UTF-8" begins with.
            rest: body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body),
            core: Reader::new(),
            line: 1,
            out: vec![0; 1024],
            ends: Vec::new(),
        }
    }

    /// The next record of at most `max` fields.
    fn next(&mut self, max: usize) -> Option<Record> {
        // Blank lines are no records; skipped here so that a record's line is its own.
        while let [b @ (b'\r' | b'\n'), tail @ ..] = self.rest {
            self.line += usize::from(*b == b'\n');
            self.rest = tail;
        }
        if self.rest.is_empty() {
            return None;
        }
        let line = self.line;
        self.core.set_line(line as u64);
        self.ends.resize(max, 0);
        let (mut nout, mut nends, mut too_many) = (0, 0, false);
        loop {
            let (result, nin, o, e) =
                self.core
                    .read_record(self.rest, &mut self.out[nout..], &mut self.ends[nends..]);
            self.rest = &self.rest[nin..];
            nout += o;
            nends += e;
            match result {
                ReadRecordResult::InputEmpty => {}
                // A record refused already keeps none of its bytes.
                ReadRecordResult::OutputFull if too_many => nout = 0,
                ReadRecordResult::OutputFull => {
                    let grown = self.out.len() * 2;
                    self.out.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => (too_many, nout, nends) = (true, 0, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        self.line = self.core.line() as usize;
        Some((line, (!too_many).then_some(nends)))
    }

    /// The `i`th field of the record just read.
    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }
}

fn header_error(error: String) -> RowError {
    RowError {
        line: 1,
        error: format!("header: {error}"),
    }
}

/// Reads the header: `mac` first, each column once, parameter names checked once here rather
/// than on every row.
fn header(records: &mut Records) -> Result<Header, RowError> {
    let Some((_, fields)) = records.next(MAX_COLUMNS) else {
        return Err(header_error("the file is empty".into()));
    };
    let n = fields.ok_or_else(|| header_error(format!("more than {MAX_COLUMNS} columns")))?;
    let mut columns = Vec::with_capacity(n);
    let mut seen = BTreeSet::new();
    let mut gives = Gives::default();
    for i in 0..n {
        let name = std::str::from_utf8(records.field(i))
            .map_err(|_| header_error(format!("column {} is not UTF-8", i + 1)))?
            .trim();
        // A spreadsheet saves "CSV" with `;` where `,` is the decimal comma: such a header
        // reads as one column, and saying only that it is not `mac` hid why.
        // The line is quoted only when it is a header (`mac;…`): a file without one starts
        // with a device's row, whose cells may be secrets.
        if i == 0 && name != "mac" && name.contains(';') {
            let shown = match name.split(';').next().map(str::trim) {
                Some("mac") => format!("{:?}", name.chars().take(80).collect::<String>()),
                _ => "the first line".to_string(),
            };
            return Err(header_error(format!(
                "{shown} is separated by semicolons; the fields must be separated by commas \
                 (save the file as CSV with commas, \"CSV UTF-8 (comma delimited)\", or \
                 replace the semicolons)"
            )));
        }
        if i == 0 && name != "mac" {
            return Err(header_error("the first column must be `mac`".into()));
        }
        if !seen.insert(name.to_string()) {
            return Err(header_error(format!("column {name:?} appears twice")));
        }
        let (column, given) = match name {
            "mac" => (Column::Mac, None),
            "model" => (Column::Model, Some(&mut gives.model)),
            "serial" => (Column::Serial, Some(&mut gives.serial)),
            "site" => (Column::Site, Some(&mut gives.site)),
            "group" => (Column::Group, Some(&mut gives.group)),
            "label" => (Column::Label, Some(&mut gives.label)),
            "state" => (Column::State, Some(&mut gives.state)),
            _ => match name.strip_prefix("secret:") {
                Some(secret) => {
                    column_name("secrets", secret)?;
                    (Column::Secret(secret.to_string()), None)
                }
                None => {
                    column_name("params", name)?;
                    (Column::Param(name.to_string()), None)
                }
            },
        };
        if let Some(given) = given {
            *given = true;
        }
        columns.push(column);
    }
    Ok(Header { columns, gives })
}

/// Checks a parameter column's name, as a header error: the name itself, and that it is one a
/// parameter can have (an unknown neutral name such as `colour` or `sip.sever` was refused on
/// every row that gave it a value, a thousand times over, and let rows without one through),
/// as a device's parameter (no Avaya `APPNAME`: [`vocab::check_device_name`]).
fn column_name(field: &str, name: &str) -> Result<(), RowError> {
    check_param(field, name, None).map_err(|e| header_error(e.to_string()))?;
    vocab::check_device_name(name).map_err(|e| header_error(format!("{field}: {e}")))
}

/// Reads every row of a CSV body, handing each to `each`.
pub fn read(body: &[u8], each: &mut Each) -> Result<(), ApiError> {
    let mut records = Records::new(body);
    let header = match header(&mut records) {
        Ok(h) => h,
        Err(e) => return each(Err(e)),
    };
    let width = header.columns.len();
    while let Some((line, fields)) = records.next(width) {
        let row = match fields {
            Some(n) if n == width => row(&header, &records, line),
            Some(n) => Err(RowError {
                line,
                error: format!("{n} fields, but the header has {width} columns"),
            }),
            None => Err(RowError {
                line,
                error: format!("more fields than the header's {width} columns"),
            }),
        };
        each(row)?;
    }
    Ok(())
}

/// The row of the record just read.
fn row<'h>(header: &'h Header, records: &Records, line: usize) -> Result<Row<'h>, RowError> {
    let text = |i: usize| {
        std::str::from_utf8(records.field(i)).map_err(|_| RowError {
            line,
            error: format!("column {}: not UTF-8", i + 1),
        })
    };
    let mac = Mac::parse(text(0)?).map_err(|e| RowError {
        line,
        error: format!("mac: {e}"),
    })?;
    let mut new = NewDevice::with_mac(mac);
    let mut gives = header.gives;
    let mut clears = Vec::new();
    let mut unvalued = Vec::new();
    for (i, column) in header.columns.iter().enumerate().skip(1) {
        let cell = text(i)?;
        let value = if cell == EMPTY_VALUE { "" } else { cell };
        match column {
            Column::Mac => {}
            // An empty cell keeps the field of a device that exists (a new one's is empty), as
            // it keeps the state: a blank left in a spreadsheet took a device out of its site,
            // and so out of its site's settings and its operators' reach. `""` empties it.
            Column::Model if cell.is_empty() => gives.model = false,
            Column::Serial if cell.is_empty() => gives.serial = false,
            Column::Site if cell.is_empty() => gives.site = false,
            Column::Group if cell.is_empty() => gives.group = false,
            Column::Label if cell.is_empty() => gives.label = false,
            Column::Model => new.model = value.into(),
            Column::Serial => new.serial = value.into(),
            Column::Site => new.site = value.into(),
            Column::Group => new.group = value.into(),
            Column::Label => new.label = value.into(),
            // An empty cell keeps the state of a device that exists; a new one is active.
            Column::State if cell.is_empty() => gives.state = false,
            Column::State => {
                new.state = DeviceState::parse(cell).ok_or_else(|| RowError {
                    line,
                    error: format!(
                        "state (column {}): {cell:?} is not a device state ({})",
                        i + 1,
                        DeviceState::ALL.map(DeviceState::as_str).join(", ")
                    ),
                })?
            }
            Column::Secret(name) if cell == SECRET_NOT_EXPORTED => unvalued.push(name.clone()),
            // An empty cell keeps the secret, and says nothing of it.
            Column::Secret(_) if cell.is_empty() => {}
            Column::Secret(name) => drop(new.secrets.insert(name.clone(), value.into())),
            // An export's mark of a value that carries a login: the device keeps its own.
            Column::Param(name) if cell == SECRET_NOT_EXPORTED => unvalued.push(name.clone()),
            // An empty cell: the device does not set that parameter (any more).
            Column::Param(name) if cell.is_empty() => clears.push(name.as_str()),
            Column::Param(name) => drop(new.params.insert(name.clone(), value.into())),
        }
    }
    Ok(Row {
        line,
        element: None,
        new,
        gives,
        clears,
        unvalued,
    })
}
