//! Test support shared by the report tests: an HTML well-formedness checker (integration
//! test files are separate crates; each includes this file with `#[path]`).

/// Checks that `html` is well formed: every opened tag is closed in order (void elements and
/// self-closing `/>` tags excepted), every attribute is quoted, no stray `<` or `>` in text,
/// every `&` starts an entity. `<style>` contents are raw text.
pub(crate) fn check_well_formed(html: &str) -> Result<(), String> {
    const VOID: [&str; 8] = ["meta", "br", "hr", "img", "input", "link", "wbr", "col"];
    let bytes = html.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b':' || c == b'_';
    let check_entity = |at: usize| -> Result<(), String> {
        let rest = &bytes[at + 1..];
        let len = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
            .count();
        if len == 0 || rest.get(len) != Some(&b';') {
            return Err(format!("bare & at byte {at}"));
        }
        Ok(())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'<' if html[i..].starts_with("<!--") => {
                let end = html[i..].find("-->").ok_or("unclosed comment")?;
                i += end + 3;
            }
            b'<' if html[i..].starts_with("<!") => {
                let end = html[i..].find('>').ok_or("unclosed doctype")?;
                i += end + 1;
            }
            b'<' if html[i..].starts_with("</") => {
                let end = html[i..].find('>').ok_or("unclosed end tag")?;
                let name = html[i + 2..i + end].trim();
                match stack.pop() {
                    Some(open) if open == name => {}
                    Some(open) => {
                        return Err(format!("</{name}> at byte {i} closes <{open}>"));
                    }
                    None => return Err(format!("</{name}> at byte {i} closes nothing")),
                }
                i += end + 1;
            }
            b'<' => {
                let mut j = i + 1;
                while j < bytes.len() && is_name(bytes[j]) {
                    j += 1;
                }
                let name = html[i + 1..j].to_ascii_lowercase();
                if name.is_empty() {
                    return Err(format!("bare < at byte {i}"));
                }
                let mut self_closed = false;
                loop {
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    match bytes.get(j) {
                        None => return Err(format!("unclosed <{name}> tag at byte {i}")),
                        Some(b'>') => {
                            j += 1;
                            break;
                        }
                        Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                            self_closed = true;
                            j += 2;
                            break;
                        }
                        Some(_) => {}
                    }
                    let start = j;
                    while j < bytes.len() && is_name(bytes[j]) {
                        j += 1;
                    }
                    if j == start {
                        return Err(format!("bad attribute in <{name}> at byte {j}"));
                    }
                    let attr = &html[start..j];
                    if bytes.get(j) != Some(&b'=') {
                        return Err(format!("attribute {attr} of <{name}> has no quoted value"));
                    }
                    j += 1;
                    let quote = *bytes.get(j).ok_or("truncated attribute")?;
                    if quote != b'"' && quote != b'\'' {
                        return Err(format!("attribute {attr} of <{name}> is not quoted"));
                    }
                    let close = html[j + 1..]
                        .find(quote as char)
                        .ok_or("unclosed attribute value")?;
                    let value_start = j + 1;
                    let value = &html[value_start..value_start + close];
                    if value.contains('<') {
                        return Err(format!("< inside attribute {attr} of <{name}>"));
                    }
                    for (k, c) in value.bytes().enumerate() {
                        if c == b'&' {
                            check_entity(value_start + k)?;
                        }
                    }
                    j = value_start + close + 1;
                }
                if !self_closed && !VOID.contains(&name.as_str()) {
                    if name == "style" || name == "script" {
                        // Raw text up to the end tag, which the loop then pops.
                        let end = html[j..]
                            .find(&format!("</{name}"))
                            .ok_or("unclosed raw text element")?;
                        j += end;
                    }
                    stack.push(name);
                }
                i = j;
            }
            b'>' => return Err(format!("stray > in text at byte {i}")),
            b'&' => {
                check_entity(i)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    match stack.last() {
        Some(open) => Err(format!("<{open}> never closed ({} open)", stack.len())),
        None => Ok(()),
    }
}
