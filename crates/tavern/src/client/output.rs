//! Printing answers: a table for people, pretty JSON for scripts.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

/// A column: its header and the field it shows.
pub type Column = (&'static str, &'static str);

fn cell(v: &Value, field: &str) -> String {
    cell_in(v, field, &jiff::tz::TimeZone::system())
}

/// A field as people read it: instants to the second in `zone`, sizes
/// (`size`, `*_bytes`) in MB and GB, yes and no.
fn cell_in(v: &Value, field: &str, zone: &jiff::tz::TimeZone) -> String {
    let mut cur = v;
    for part in field.split('.') {
        cur = &cur[part];
    }
    let last = field.rsplit('.').next().unwrap_or(field);
    match cur {
        Value::Null => "-".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) if last == "size" || last.ends_with("bytes") => n
            .as_u64()
            .map_or_else(|| n.to_string(), tavern_types::words::size),
        Value::String(s) => match s.parse::<jiff::Timestamp>() {
            Ok(t) if s.contains('T') => tavern_types::words::instant(t, zone),
            _ => s.clone(),
        },
        other => other.to_string(),
    }
}

/// Writes a line to stdout; a reader that went away (`| head`) is not an
/// error worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub fn print(json: bool, value: &Value, columns: &[Column]) {
    if json {
        emit(&serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if rows.is_empty() {
        emit("(none)");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header(columns.iter().map(|(h, _)| *h));
    for row in rows {
        table.add_row(columns.iter().map(|(_, f)| cell(row, f)));
    }
    emit(&table.to_string());
}

/// One object as a two-column table of its fields.
pub fn print_record(json: bool, value: &Value, fields: &[Column]) {
    if json {
        emit(&serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    for (name, field) in fields {
        table.add_row([name.to_string(), cell(value, field)]);
    }
    emit(&table.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_dotted_paths() {
        let v = serde_json::json!({"slug": "a", "license": {"label": "main"}, "n": 3, "x": null});
        assert_eq!(cell(&v, "slug"), "a");
        assert_eq!(cell(&v, "license.label"), "main");
        assert_eq!(cell(&v, "n"), "3");
        assert_eq!(cell(&v, "x"), "-");
        assert_eq!(cell(&v, "missing.deeper"), "-");
    }

    #[test]
    fn cells_read_as_people_say_them() {
        let v = serde_json::json!({
            "at": "2026-12-02T08:15:03.123Z", "size": 2_340_000_000u64,
            "prepared": false, "live": true, "slug": "2026",
        });
        let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(cell_in(&v, "at", &zone), "2026-12-02 09:15:03 CET");
        assert_eq!(cell_in(&v, "size", &zone), "2.3 GB");
        assert_eq!(cell_in(&v, "prepared", &zone), "no");
        assert_eq!(cell_in(&v, "live", &zone), "yes");
        assert_eq!(cell_in(&v, "slug", &zone), "2026");
    }
}
