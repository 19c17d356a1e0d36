//! Where each key of a scenario file sits: the byte span of every value by its field path
//! (`profiles[1].session_timeout_minutes`), so that errors can name a line and a field.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Every value of a document with its field path and byte span, in document order.
#[derive(Debug, Default)]
pub(crate) struct FieldMap {
    entries: Vec<(String, Range<usize>)>,
    /// Spans of the keys themselves (TOML), by the path they name.
    keys: Vec<(String, Range<usize>)>,
}

impl FieldMap {
    /// The fields of a TOML text (empty if it does not parse).
    pub(crate) fn toml(text: &str) -> Self {
        let mut map = Self::default();
        if let Ok(root) = DeTable::parse(text) {
            map.walk_toml_table("", root.get_ref());
        }
        map
    }

    fn walk_toml_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = join(prefix, key.get_ref());
            self.keys.push((path.clone(), key.span()));
            self.walk_toml_value(path, value);
        }
    }

    fn walk_toml_value(&mut self, path: String, value: &Spanned<DeValue<'_>>) {
        self.entries.push((path.clone(), value.span()));
        match value.get_ref() {
            DeValue::Table(table) => self.walk_toml_table(&path, table),
            DeValue::Array(array) => {
                for (index, item) in array.iter().enumerate() {
                    self.walk_toml_value(format!("{path}[{index}]"), item);
                }
            }
            _ => {}
        }
    }

    /// The fields of a JSON text, as far as it scans (a tiny scanner: the text was or will be
    /// parsed by serde_json, this only records where values start and end).
    pub(crate) fn json(text: &str) -> Self {
        let mut map = Self::default();
        let mut scanner = JsonScanner {
            bytes: text.as_bytes(),
            at: 0,
        };
        scanner.value(String::new(), &mut map.entries, 0);
        map
    }

    /// The span of the value at `path`, or of its nearest recorded ancestor.
    pub(crate) fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut path = path;
        loop {
            if let Some((_, span)) = self.entries.iter().find(|(p, _)| p == path) {
                return Some(span.clone());
            }
            path = parent(path)?;
        }
    }

    /// The field whose key is at byte `offset`, else the deepest field whose value contains it.
    pub(crate) fn field_at(&self, offset: usize) -> Option<&str> {
        if let Some((path, _)) = self.keys.iter().find(|(_, span)| span.contains(&offset)) {
            return Some(path);
        }
        self.entries
            .iter()
            .filter(|(_, span)| span.start <= offset && offset <= span.end)
            .min_by_key(|(_, span)| span.end - span.start)
            .map(|(path, _)| path.as_str())
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, offset - line_start + 1)
}

/// Byte offset of a 1-based line and column.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (index, part) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            return (offset + column.saturating_sub(1)).min(text.len());
        }
        offset += part.len();
    }
    text.len()
}

struct JsonScanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonScanner<'_> {
    fn skip_ws(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        self.at += 1;
        while let Some(&b) = self.bytes.get(self.at) {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => {
                    let raw = self.bytes.get(start..self.at - 1)?;
                    return Some(String::from_utf8_lossy(raw).into_owned());
                }
                _ => {}
            }
        }
        None
    }

    /// Scans one value at `path`; returns false when the text stops making sense.
    fn value(&mut self, path: String, out: &mut Vec<(String, Range<usize>)>, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        self.skip_ws();
        let start = self.at;
        let index = out.len();
        out.push((path.clone(), start..start));
        let ok =
            match self.bytes.get(self.at) {
                Some(b'{') => {
                    self.at += 1;
                    loop {
                        self.skip_ws();
                        if self.bytes.get(self.at) == Some(&b'}') {
                            self.at += 1;
                            break true;
                        }
                        let Some(key) = self.string() else {
                            break false;
                        };
                        self.skip_ws();
                        if self.bytes.get(self.at) != Some(&b':') {
                            break false;
                        }
                        self.at += 1;
                        if !self.value(join(&path, &key), out, depth + 1) {
                            break false;
                        }
                        self.skip_ws();
                        match self.bytes.get(self.at) {
                            Some(b',') => self.at += 1,
                            Some(b'}') => {
                                self.at += 1;
                                break true;
                            }
                            _ => break false,
                        }
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    let mut item = 0;
                    loop {
                        self.skip_ws();
                        if self.bytes.get(self.at) == Some(&b']') {
                            self.at += 1;
                            break true;
                        }
                        if !self.value(format!("{path}[{item}]"), out, depth + 1) {
                            break false;
                        }
                        item += 1;
                        self.skip_ws();
                        match self.bytes.get(self.at) {
                            Some(b',') => self.at += 1,
                            Some(b']') => {
                                self.at += 1;
                                break true;
                            }
                            _ => break false,
                        }
                    }
                }
                Some(b'"') => self.string().is_some(),
                Some(_) => {
                    while self.bytes.get(self.at).is_some_and(|b| {
                        !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace()
                    }) {
                        self.at += 1;
                    }
                    self.at > start
                }
                None => false,
            };
        out[index].1 = start..self.at;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_paths_and_lines() {
        let text = "name = \"x\"\n[org]\nlock = true\n[[profiles]]\nname = \"a\"\n[[profiles]]\nname = \"b\"\nusers = 3\n";
        let map = FieldMap::toml(text);
        let span = map.span_of("profiles[1].users").unwrap();
        assert_eq!(line_col(text, span.start).0, 8);
        let span = map.span_of("profiles[1].missing").unwrap();
        assert_eq!(line_col(text, span.start).0, 6);
        assert_eq!(map.field_at(text.find("true").unwrap()), Some("org.lock"));
    }

    #[test]
    fn json_paths_and_lines() {
        let text = "{\n  \"org\": {\"lock\": true},\n  \"profiles\": [\n    {\"name\": \"a\", \"users\": 3}\n  ]\n}";
        let map = FieldMap::json(text);
        let span = map.span_of("profiles[0].users").unwrap();
        assert_eq!(line_col(text, span.start).0, 4);
        assert_eq!(map.field_at(text.find("true").unwrap()), Some("org.lock"));
        assert_eq!(offset_of(text, 2, 3), text.find("\"org\"").unwrap());
    }
}
