//! Reading the file into [`super::RawConfig`] without stopping at the first
//! unknown key. serde's `deny_unknown_fields` refuses the whole file at the
//! first one, so on such an error the key is reported, its lines are
//! blanked out (spaces, so every byte offset and line number stays where it
//! was) and the text is read again, until it reads or fails otherwise. The
//! extent of a key (its value, or a whole `[table]`) comes from one lenient
//! parse by `toml_edit`, which keeps spans.

use super::errors::Errors;
use super::{locate, ConfigError, RawConfig};
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table};

/// The raw config, every unknown key reported into `errs`. `None` when the
/// text does not read (its errors pushed).
pub(super) fn parse_raw(text: &str, file: &str, errs: &mut Errors) -> Option<RawConfig> {
    let doc = ImDocument::parse(text).ok();
    let mut current = text.to_string();
    // Each round blanks one key: never more rounds than the text has bytes.
    for _ in 0..=text.len() {
        let e = match toml::from_str::<RawConfig>(&current) {
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let (line, column, key, text_line) = locate(text, e.span());
        errs.push(ConfigError::At {
            file: file.to_string(),
            line,
            column,
            key,
            message: e.message().trim().to_string(),
            text: text_line,
        });
        if !e.message().starts_with("unknown field") {
            return None;
        }
        let ranges = doc
            .as_ref()
            .zip(e.span())
            .and_then(|(d, span)| key_ranges(d.as_table(), span.start))?;
        let blanked = blank(&current, &ranges);
        // A key we cannot cut out cleanly (inside an inline table, a dotted
        // key): stop here rather than report errors of our own making.
        toml::from_str::<toml::Table>(&blanked).ok()?;
        current = blanked;
    }
    None
}

/// The byte ranges of the key starting at `start` and everything under it.
fn key_ranges(table: &Table, start: usize) -> Option<Vec<Range<usize>>> {
    for (name, item) in table.iter() {
        let (key, _) = table.get_key_value(name)?;
        if key.span().is_some_and(|s| s.start == start) {
            let mut out = Vec::new();
            item_ranges(key.span(), item, &mut out);
            return Some(out);
        }
        let found = match item {
            Item::Table(t) => key_ranges(t, start),
            Item::ArrayOfTables(a) => a.iter().find_map(|t| key_ranges(t, start)),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The text of an item: a key and its value, or a table's header and keys.
fn item_ranges(key: Option<Range<usize>>, item: &Item, out: &mut Vec<Range<usize>>) {
    match item {
        Item::Value(v) => {
            if let (Some(k), Some(v)) = (key, v.span()) {
                out.push(k.start..v.end);
            }
        }
        Item::Table(t) => table_ranges(t, out),
        Item::ArrayOfTables(a) => a.iter().for_each(|t| table_ranges(t, out)),
        Item::None => {}
    }
}

fn table_ranges(t: &Table, out: &mut Vec<Range<usize>>) {
    out.extend(t.span());
    for (name, item) in t.iter() {
        if let Some((key, _)) = t.get_key_value(name) {
            item_ranges(key.span(), item, out);
        }
    }
}

/// `text` with every character in `ranges` but line ends made spaces (as
/// many as its bytes, so offsets do not move).
fn blank(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c != '\n' && c != '\r' && ranges.iter().any(|r| r.contains(&i)) {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}
