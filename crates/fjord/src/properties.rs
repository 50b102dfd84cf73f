//! Java `.properties` files, the format of Kafka's `server.properties`.
//!
//! Supports `key=value`, `key: value` and `key value`, `#` and `!` comments, backslash line
//! continuations and the common escapes, which is what Kafka configuration files use.

use std::collections::BTreeMap;

/// Parses properties text; later keys override earlier ones, as in Java. Values are trimmed at
/// both ends (Java keeps trailing blanks, but every Kafka config type trims them when parsed).
pub(crate) fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let continued = ends_with_odd_backslashes(line);
        if continued {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        if let Some((k, v)) = split_pair(&logical) {
            out.insert(unescape(&k), unescape(v.trim()));
        }
        logical.clear();
    }
    if !logical.is_empty() {
        if let Some((k, v)) = split_pair(&logical) {
            out.insert(unescape(&k), unescape(v.trim()));
        }
    }
    out
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace.
fn split_pair(line: &str) -> Option<(String, &str)> {
    let mut key = String::new();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            key.push('\\');
            key.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return Some((key, &line[i + 1..])),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return Some((key, rest));
            }
            c => key.push(c),
        }
    }
    if key.is_empty() {
        None
    } else {
        Some((key, ""))
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_files() {
        let text = "# comment\n! also\nnode.id=1\nlisteners = PLAINTEXT://127.0.0.1:9092\nlog.dirs: /tmp/a\\\n  ,/tmp/b\nkey\\=x=y\nempty=\n";
        let p = parse(text);
        assert_eq!(p["node.id"], "1");
        assert_eq!(p["listeners"], "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(p["log.dirs"], "/tmp/a,/tmp/b");
        assert_eq!(p["key=x"], "y");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 5);
    }
}
