//! Printing answers: a table for people, pretty JSON for scripts.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

/// A column: its header and the field it shows.
pub type Column = (&'static str, &'static str);

fn cell(v: &Value, field: &str) -> String {
    let mut cur = v;
    for part in field.split('.') {
        cur = &cur[part];
    }
    match cur {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
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
}
