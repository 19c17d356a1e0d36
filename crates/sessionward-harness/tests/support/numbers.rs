//! Number formatting the report tests expect, written independently of the report code they
//! test (integration test files are separate crates; each includes this file with `#[path]`).

/// `1234` as `1,234`, as the report writes counts.
pub(crate) fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
