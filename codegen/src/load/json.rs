//! A JSON reader that records the position of every value and key.
//!
//! `serde_json` does not expose positions of values, and a linter must point at them, so this
//! small recursive-descent reader builds a [`Node`] tree directly. It bounds nesting (the caller
//! chooses the limit) so hostile input cannot overflow the stack.

use super::node::{Entry, Node, Pos, Value};

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

/// Parses `text` as one JSON document.
pub fn parse(text: &str, max_depth: usize) -> Result<Node, SyntaxError> {
    let mut p = Reader {
        src: text.as_bytes(),
        text,
        at: 0,
        line: 1,
        line_start: 0,
        col_cache: (0, 1),
        max_depth,
    };
    if text.starts_with('\u{feff}') {
        p.at = 3;
        p.line_start = 3;
        p.col_cache = (3, 1);
    }
    p.skip_ws();
    let node = p.value(0)?;
    p.skip_ws();
    if p.at < p.src.len() {
        return Err(p.error("unexpected text after the JSON document"));
    }
    Ok(node)
}

struct Reader<'a> {
    src: &'a [u8],
    text: &'a str,
    at: usize,
    line: u32,
    line_start: usize,
    /// (byte offset, column) of the last position computed on the current line.
    col_cache: (usize, u32),
    max_depth: usize,
}

impl Reader<'_> {
    fn pos(&mut self) -> Pos {
        let (from, mut col) = if self.col_cache.0 >= self.line_start && self.col_cache.0 <= self.at
        {
            self.col_cache
        } else {
            (self.line_start, 1)
        };
        col += self.src[from..self.at]
            .iter()
            .filter(|b| (**b & 0xC0) != 0x80)
            .count() as u32;
        self.col_cache = (self.at, col);
        Pos {
            line: self.line,
            col,
        }
    }

    fn error(&mut self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_string(),
            pos: self.pos(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.src.get(self.at) {
            match b {
                b' ' | b'\t' => self.at += 1,
                b'\r' if self.src.get(self.at + 1) == Some(&b'\n') => self.at += 1,
                b'\r' => {
                    // A lone CR ends a line, as in YAML, so both loaders count lines alike.
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                b'\n' => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        let Some(&b) = self.src.get(self.at) else {
            return Err(self.error("unexpected end of input, expected a value"));
        };
        let value = match b {
            b'{' => {
                self.nest(depth)?;
                self.object(depth)?
            }
            b'[' => {
                self.nest(depth)?;
                self.array(depth)?
            }
            b'"' => Value::String(self.string()?),
            b't' => self.literal("true", Value::Bool(true))?,
            b'f' => self.literal("false", Value::Bool(false))?,
            b'n' => self.literal("null", Value::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(self.error("expected a JSON value")),
        };
        Ok(Node { value, pos })
    }

    fn nest(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth >= self.max_depth {
            let msg = format!("nesting deeper than {} levels", self.max_depth);
            return Err(self.error(&msg));
        }
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        if self.src[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.at;
        while let Some(&b) = self.src.get(self.at) {
            if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                self.at += 1;
            } else {
                break;
            }
        }
        let text = &self.text[start..self.at];
        match text.parse::<serde_json::Number>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                self.at = start;
                Err(self.error("invalid number"))
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.at += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(&b) = self.src.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(&self.text[start..self.at]);
            match self.src.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let Some(&b) = self.src.get(self.at) else {
            return Err(self.error("unterminated string"));
        };
        self.at += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) {
                    if self.src[self.at..].starts_with(b"\\u") {
                        self.at += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            char::from_u32(c).unwrap_or('\u{fffd}')
                        } else {
                            '\u{fffd}'
                        }
                    } else {
                        '\u{fffd}'
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{fffd}')
                }
            }
            _ => {
                self.at -= 1;
                return Err(self.error("invalid escape in string"));
            }
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .src
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match digits {
            Some(v) => {
                self.at += 4;
                Ok(v)
            }
            None => Err(self.error("invalid \\u escape")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.at += 1;
        let mut entries = Vec::new();
        self.skip_ws();
        if self.src.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Value::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.src.get(self.at) != Some(&b'"') {
                return Err(self.error("expected a string key"));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_ws();
            if self.src.get(self.at) != Some(&b':') {
                return Err(self.error("expected `:` after the key"));
            }
            self.at += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_pos,
                value,
            });
            self.skip_ws();
            match self.src.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(entries));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.src.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.src.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_values_and_keys() {
        let doc = parse("{\n  \"a\": [1, \"é\", true],\n  \"b\": null\n}", 64).unwrap();
        let a = doc.entry("a").unwrap();
        assert_eq!(a.key_pos, Pos { line: 2, col: 3 });
        assert_eq!(a.value.pos, Pos { line: 2, col: 8 });
        assert_eq!(a.value.items()[2].pos, Pos { line: 2, col: 17 });
        assert_eq!(doc.get("b").unwrap().pos, Pos { line: 3, col: 8 });
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(100_000);
        let err = parse(&deep, 500).unwrap_err();
        assert!(err.message.contains("nesting"));
    }

    #[test]
    fn escapes_and_surrogates() {
        let doc = parse(r#""a\"\u0041\ud83d\ude00\n""#, 4).unwrap();
        assert_eq!(doc.as_str(), Some("a\"A\u{1F600}\n"));
    }
}
