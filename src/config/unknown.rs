//! Reading the file into [`super::RawConfig`] without stopping at the first
//! unknown key or bad value. serde (`deny_unknown_fields`, typed values)
//! refuses the whole file at the first one, so on such an error the key is
//! reported, its text blanked out (spaces, so every byte offset and line
//! number stays where it was) and the text read again, until it reads or
//! fails in a way no cut can help (a syntax error, a missing key). The
//! extent of a key (its value, or a whole `[table]`) comes from one lenient
//! parse by `toml_edit`, which keeps spans.

use super::errors::Errors;
use super::{locate, ConfigError, RawConfig};
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table};

/// At most this many unknown keys and bad values are reported.
const MAX_CUTS: usize = 100;

/// The raw config, every unknown key reported into `errs`. A value of the
/// wrong type is reported and cut out too, so that the rest of the file is
/// still read; but then the config is not validated (`None`): a default in
/// its place could raise errors that are not there. `None` also when the
/// text does not read at all (its error pushed).
pub(super) fn parse_raw(text: &str, file: &str, errs: &mut Errors) -> Option<RawConfig> {
    let doc = ImDocument::parse(text).ok();
    let mut current = text.to_string();
    let mut cut_values: Vec<String> = Vec::new();
    // Each round reads the whole text again: a file refused key by key is
    // told about its first ones only.
    for round in 0..=MAX_CUTS {
        let e = match toml::from_str::<RawConfig>(&current) {
            Ok(raw) => return cut_values.is_empty().then_some(raw),
            Err(e) => e,
        };
        if round == MAX_CUTS {
            errs.push(ConfigError::General {
                file: file.to_string(),
                message: format!("more than {MAX_CUTS} keys refused; fix these first"),
            });
            return None;
        }
        let message = e.message().trim();
        // A required key whose bad value we cut out: already reported.
        if cut_values
            .iter()
            .any(|k| message.starts_with(&format!("missing field `{k}`")))
        {
            return None;
        }
        let (line, column, key, text_line) = locate(text, e.span());
        errs.push(ConfigError::At {
            file: file.to_string(),
            line,
            column,
            key,
            message: message.to_string(),
            text: text_line,
        });
        let unknown = message.starts_with("unknown field");
        let (ranges, name) = doc
            .as_ref()
            .zip(e.span())
            .and_then(|(d, span)| key_ranges(d.as_table(), span.start, unknown))?;
        let blanked = blank(&current, &ranges);
        // A key we cannot cut out cleanly (inside an inline table, a dotted
        // key): stop here rather than report errors of our own making.
        toml::from_str::<toml::Table>(&blanked).ok()?;
        if !unknown {
            cut_values.push(name);
        }
        current = blanked;
    }
    None
}

/// The byte ranges, and the name, of the key starting at `at` (`unknown`)
/// or whose value holds `at` (a bad value), with everything under it.
fn key_ranges(table: &Table, at: usize, unknown: bool) -> Option<(Vec<Range<usize>>, String)> {
    for (name, item) in table.iter() {
        let (key, _) = table.get_key_value(name)?;
        let hit = if unknown {
            key.span().is_some_and(|s| s.start == at)
        } else {
            item.as_value()
                .and_then(|v| v.span())
                .is_some_and(|s| s.contains(&at))
        };
        if hit {
            let mut out = Vec::new();
            item_ranges(key.span(), item, &mut out);
            return Some((out, name.to_string()));
        }
        let found = match item {
            Item::Table(t) => key_ranges(t, at, unknown),
            Item::ArrayOfTables(a) => a.iter().find_map(|t| key_ranges(t, at, unknown)),
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

#[cfg(test)]
mod tests {
    use super::super::{Config, EMBEDDED_DEFAULT};
    use std::path::Path;

    fn keys(extra: &str) -> Vec<String> {
        let text = format!("{EMBEDDED_DEFAULT}\n{extra}");
        let (_, errs) = Config::check(&text, "t.toml", Path::new("/base"));
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn keys_that_cannot_be_cut_cleanly_stop_the_reading_there() {
        // Inside an inline table: reported, then reading stops (no error
        // of our own making follows).
        let text = format!(
            "http = {{ listen = \"127.0.0.1:9\", tpyo = 1 }}\n{EMBEDDED_DEFAULT}\n[retention]\nkeep = 1\n"
        );
        let (_, errs) = Config::check(&text, "t.toml", Path::new("/base"));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].to_string().contains("tpyo"), "{errs:#?}");
        // A job of the wrong shape is cut whole (serde names the value).
        let got = keys(
            "[schedule]\ndigest = { cron = \"0 0 8 * * MON\", tpyo = 1 }\n[retention]\nkeep = 1\n",
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("key `digest`"), "{got:#?}");
    }

    #[test]
    fn a_file_refused_key_by_key_is_told_its_first_ones() {
        let extra: String = (0..150).map(|i| format!("k{i} = {i}\n")).collect();
        let got = keys(&format!("[retention]\n{extra}"));
        assert_eq!(got.len(), 101, "{got:#?}");
        assert!(got[100].contains("more than 100 keys"), "{got:#?}");
        let extra: String = (0..100).map(|i| format!("k{i} = {i}\n")).collect();
        assert_eq!(keys(&format!("[retention]\n{extra}")).len(), 100);
    }

    #[test]
    fn unknown_arrays_of_tables_quoted_keys_and_crlf_are_cut() {
        let got = keys(
            "[[mailbox]]\nname = \"x\"\n\n[[mailbox]]\nname = \"y\"\n\n[retention]\n\"keep\" = 1\n",
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("mailbox"), "{got:#?}");
        assert!(got[1].contains("keep"), "{got:#?}");
        let text =
            format!("{EMBEDDED_DEFAULT}\n[retention]\nkeep = 1\nmore = 2\n").replace('\n', "\r\n");
        let (_, errs) = Config::check(&text, "t.toml", Path::new("/base"));
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }
}
