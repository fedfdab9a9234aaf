//! JSON request bodies: read a top-level member, and remove one while keeping every
//! other byte (spacing, member order, number formats) as the client sent it.

/// The byte spans of each member of a top-level JSON object: (decoded key, member start,
/// value end). `None` if `text` is not a JSON object.
pub fn members(text: &[u8]) -> Option<Vec<(String, usize, usize)>> {
    let mut p = Parser { s: text, i: 0 };
    p.ws();
    if p.peek()? != b'{' {
        return None;
    }
    p.i += 1;
    let mut out = Vec::new();
    p.ws();
    if p.peek()? == b'}' {
        return p.finish(out);
    }
    loop {
        p.ws();
        let start = p.i;
        let key_raw = p.string()?;
        let key: String = serde_json::from_slice(key_raw).ok()?;
        p.ws();
        if p.peek()? != b':' {
            return None;
        }
        p.i += 1;
        p.ws();
        p.value()?;
        out.push((key, start, p.i));
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => return p.finish(out),
            _ => return None,
        }
    }
}

/// `text` without the top-level members named `name`. `None` if there are none (or
/// `text` is not a JSON object).
pub fn remove_member(text: &[u8], name: &str) -> Option<Vec<u8>> {
    let members = members(text)?;
    if !members.iter().any(|(k, _, _)| k == name) {
        return None;
    }
    // Cut each removed member with the separator that links it to a kept neighbour:
    // the comma after it, or (for the last kept-less tail) the comma before it.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let n = members.len();
    for (idx, (key, start, end)) in members.iter().enumerate() {
        if key != name {
            continue;
        }
        if idx + 1 < n {
            cuts.push((*start, members[idx + 1].1));
        } else if idx > 0 {
            cuts.push((members[idx - 1].2, *end));
        } else {
            cuts.push((*start, *end));
        }
    }
    // Merge overlapping cuts (consecutive removed members at the end).
    cuts.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in cuts {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = Vec::with_capacity(text.len());
    let mut pos = 0;
    for (a, b) in merged {
        out.extend_from_slice(&text[pos..a]);
        pos = b;
    }
    out.extend_from_slice(&text[pos..]);
    Some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn finish<T>(&mut self, v: T) -> Option<T> {
        self.i += 1;
        self.ws();
        (self.i == self.s.len()).then_some(v)
    }

    /// A string, returned with its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(&self.s[start..self.i]);
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips one value (checked by serde_json separately when it matters).
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(text: &str, name: &str) -> Option<String> {
        remove_member(text.as_bytes(), name).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn removes_only_the_member() {
        assert_eq!(
            rm(
                r#"{"a": 1.50, "apikey":"k", "b" : [1,{"x":"}"}]}"#,
                "apikey"
            )
            .unwrap(),
            r#"{"a": 1.50, "b" : [1,{"x":"}"}]}"#
        );
        assert_eq!(
            rm(r#"{"a":1,"apikey":"k"}"#, "apikey").unwrap(),
            r#"{"a":1}"#
        );
        assert_eq!(rm(r#" {"apikey":"k"} "#, "apikey").unwrap(), r#" {} "#);
        assert_eq!(
            rm(r#"{"apikey":"k","a":"\"q","apikey":"j"}"#, "apikey").unwrap(),
            r#"{"a":"\"q"}"#
        );
        assert_eq!(
            rm(r#"{"api\u006bey":"k","z":0}"#, "apikey").unwrap(),
            r#"{"z":0}"#
        );
        assert_eq!(rm(r#"{"a":1}"#, "apikey"), None);
        assert_eq!(rm(r#"[1]"#, "apikey"), None);
        assert_eq!(rm(r#"{"a":1} x"#, "apikey"), None);
    }
}
