//! Printing answers: the server's JSON as it came for scripts (`--json`),
//! or a table for people, its rows read from the answer as tavern-api's
//! types and its cells chosen by typed columns.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use jiff::tz::TimeZone;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::http::read;

/// A column of a table of `T`s: its header and what it shows of one.
pub struct Column<T> {
    header: &'static str,
    cell: fn(&T) -> Cell,
}

impl<T> Clone for Column<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Column<T> {}

impl<T> Column<T> {
    pub const fn new(header: &'static str, cell: fn(&T) -> Cell) -> Self {
        Self { header, cell }
    }
}

/// One field as people read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// Nothing there: `-`.
    Missing,
    /// yes or no.
    YesNo(bool),
    /// Bytes, in kB, MB and GB.
    Size(u64),
    /// An RFC 3339 instant, to the second in the reader's time zone (as
    /// sent when it does not read as one).
    At(String),
    /// A number as JSON writes it (`12.0`, `0.5`).
    Number(f64),
}

impl Cell {
    pub fn text(s: impl ToString) -> Self {
        Self::Text(s.to_string())
    }

    /// Text, or `-` when there is none.
    pub fn maybe(s: Option<impl ToString>) -> Self {
        s.map_or(Self::Missing, Self::text)
    }

    pub fn at(s: &str) -> Self {
        Self::At(s.to_owned())
    }

    pub fn at_maybe(s: Option<&String>) -> Self {
        s.map_or(Self::Missing, |s| Self::at(s))
    }

    pub fn size(n: Option<u64>) -> Self {
        n.map_or(Self::Missing, Self::Size)
    }

    fn render(&self, zone: &TimeZone) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Missing => "-".into(),
            Self::YesNo(true) => "yes".into(),
            Self::YesNo(false) => "no".into(),
            Self::Size(n) => tavern_types::words::size(*n),
            Self::At(s) => s
                .parse::<jiff::Timestamp>()
                .map_or_else(|_| s.clone(), |t| tavern_types::words::instant(t, zone)),
            Self::Number(n) => number(*n),
        }
    }
}

/// A number as JSON writes it: `12.0`, `0.5`.
pub fn number(n: f64) -> String {
    Value::from(n).to_string()
}

/// Writes a line to stdout; a reader that went away (`| head`) is not an
/// error worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// The server's answer as it came, for scripts.
pub fn print_json(answer: &Value) {
    emit(&serde_json::to_string_pretty(answer).unwrap_or_default());
}

/// An answer (one `T` or a list of them): as it came with `json`, else a
/// table with a row for each.
pub fn print<T: DeserializeOwned>(
    json: bool,
    answer: &Value,
    columns: &[Column<T>],
) -> anyhow::Result<()> {
    if json {
        print_json(answer);
        return Ok(());
    }
    let rows: Vec<T> = match answer {
        Value::Array(_) => read(answer)?,
        one => vec![read(one)?],
    };
    print_rows(&rows, columns);
    Ok(())
}

/// Rows already read, as a table (`(none)` for none).
pub fn print_rows<T>(rows: &[T], columns: &[Column<T>]) {
    emit(&table(rows, columns, &TimeZone::system()));
}

/// One `T` as a two-column table of its fields, or as it came with `json`.
pub fn print_record<T: DeserializeOwned>(
    json: bool,
    answer: &Value,
    fields: &[Column<T>],
) -> anyhow::Result<()> {
    if json {
        print_json(answer);
        return Ok(());
    }
    emit(&record(&read(answer)?, fields, &TimeZone::system()));
    Ok(())
}

fn table<T>(rows: &[T], columns: &[Column<T>], zone: &TimeZone) -> String {
    if rows.is_empty() {
        return "(none)".into();
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header(columns.iter().map(|c| c.header));
    for row in rows {
        table.add_row(columns.iter().map(|c| (c.cell)(row).render(zone)));
    }
    table.to_string()
}

fn record<T>(one: &T, fields: &[Column<T>], zone: &TimeZone) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    for c in fields {
        table.add_row([c.header.to_owned(), (c.cell)(one).render(zone)]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn cells_read_as_people_say_them() {
        let zone = berlin();
        let says = |c: Cell| c.render(&zone);
        assert_eq!(
            says(Cell::at("2026-12-02T08:15:03.123Z")),
            "2026-12-02 09:15:03 CET"
        );
        assert_eq!(says(Cell::at("tonight")), "tonight");
        assert_eq!(says(Cell::size(Some(2_340_000_000))), "2.3 GB");
        assert_eq!(says(Cell::size(None)), "-");
        assert_eq!(says(Cell::YesNo(false)), "no");
        assert_eq!(says(Cell::YesNo(true)), "yes");
        assert_eq!(says(Cell::text("2026")), "2026");
        assert_eq!(says(Cell::maybe(None::<&str>)), "-");
        assert_eq!(says(Cell::maybe(Some(3))), "3");
        assert_eq!(says(Cell::Number(12.0)), "12.0");
        assert_eq!(says(Cell::Number(0.25)), "0.25");
    }

    struct Pet {
        name: &'static str,
        legs: Option<u32>,
    }

    const PET_COLUMNS: &[Column<Pet>] = &[
        Column::new("NAME", |p| Cell::text(p.name)),
        Column::new("LEGS", |p| Cell::maybe(p.legs)),
    ];

    #[test]
    fn tables_have_a_row_for_each_and_say_when_there_is_none() {
        let rows = [
            Pet {
                name: "cat",
                legs: Some(4),
            },
            Pet {
                name: "snake",
                legs: None,
            },
        ];
        let shown = table(&rows, PET_COLUMNS, &berlin());
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[1].contains("NAME") && lines[1].contains("LEGS"),
            "{shown}"
        );
        assert!(lines.iter().any(|l| l.contains("cat") && l.contains('4')));
        assert!(lines.iter().any(|l| l.contains("snake") && l.contains('-')));
        assert_eq!(table(&[], PET_COLUMNS, &berlin()), "(none)");
        let one = record(&rows[0], PET_COLUMNS, &berlin());
        assert!(
            one.lines().any(|l| l.contains("NAME") && l.contains("cat")),
            "{one}"
        );
    }
}
