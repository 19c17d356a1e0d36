//! Text helpers shared by the renderings: escaping and number formatting.

use super::model::MemoryStats;

/// Escapes `& < > " '` so that `text` can go into HTML or SVG text and quoted attributes.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Makes `text` safe inside a Markdown table cell: pipes escaped, line breaks flattened,
/// HTML-significant characters escaped so a renderer shows them as text.
pub(crate) fn escape_md_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push_str("\\`"),
            _ => out.push(c),
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short human form of a count or rate: `950`, `12.3k`, `4.56M`, `1.2G`.
pub(crate) fn compact(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e12 {
        (value / 1e12, "T")
    } else if abs >= 1e9 {
        (value / 1e9, "G")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    trim_number(scaled, 3) + suffix
}

/// `value` with at most `sig` significant digits, trailing zeros removed.
fn trim_number(value: f64, sig: i32) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (sig - 1 - magnitude).clamp(0, 6) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A duration in nanoseconds in the unit that reads best: `850 ns`, `1.25 µs`, `3.4 ms`, `2 s`.
pub(crate) fn nanos(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{} µs", trim_number(v / 1e3, 3))
    } else if ns < 1_000_000_000 {
        format!("{} ms", trim_number(v / 1e6, 3))
    } else {
        format!("{} s", trim_number(v / 1e9, 3))
    }
}

/// A simulated minute as `h:mm` since the start of the day (hours may exceed 23).
pub(crate) fn clock(minute: f64) -> String {
    let m = minute.max(0.0).round() as u64;
    format!("{}:{:02}", m / 60, m % 60)
}

/// `1 disagreement`, `2 disagreements`: a grouped count and the noun in the right number.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", group(n))
    }
}

/// The memory measurement in words: bytes per session and the session count of the separate
/// engine it was taken on, or `not measured`, never a made-up `0 B`.
pub(crate) fn memory(memory: Option<&MemoryStats>) -> String {
    match memory {
        Some(m) => format!(
            "{:.0} B per session, measured with {} sessions in a separate engine ({} of its \
             records at their home slot)",
            m.bytes_per_live_session,
            group(m.live_sessions),
            percent(m.records_at_home, m.live_sessions)
        ),
        None => "not measured".to_owned(),
    }
}

/// `part / whole` as a percentage with one decimal, `0.0%` when `whole` is zero.
pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.0%".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_all_five() {
        assert_eq!(
            escape_html(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_md_cell("a|b\n<c>"), "a\\|b &lt;c&gt;");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(4_560_000.0), "4.56M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(nanos(850), "850 ns");
        assert_eq!(nanos(1_250), "1.25 µs");
        assert_eq!(nanos(3_400_000), "3.4 ms");
        assert_eq!(clock(605.0), "10:05");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(1, 0), "0.0%");
        assert_eq!(count(1, "disagreement"), "1 disagreement");
        assert_eq!(count(1200, "disagreement"), "1,200 disagreements");
        assert_eq!(memory(None), "not measured");
        let measured = MemoryStats {
            live_sessions: 1_000_000,
            bytes_per_live_session: 93.25,
            records_at_home: 916_000,
        };
        assert_eq!(
            memory(Some(&measured)),
            "93 B per session, measured with 1,000,000 sessions in a separate engine (91.6% of \
             its records at their home slot)"
        );
    }
}
