//! A small JSON reader for exchange frames: it checks a whole frame against the JSON grammar
//! once, then looks values up lazily, borrowing from the frame. Nothing is allocated.
//!
//! Exchange frames are small (hundreds of bytes) and a parser needs a handful of fields, so
//! scanning for them is cheaper than building a tree, and it keeps number tokens as written:
//! Kraken's `"last":0.00001234` stays the text `0.00001234`, never an `f64`.

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON at byte {at}")]
    Syntax { at: usize },
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A JSON value borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number token exactly as written.
    Number(&'a str),
    String(Str<'a>),
    Array(Array<'a>),
    Object(Object<'a>),
}

/// A string's raw contents, between the quotes, escapes not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Str<'a> {
    raw: &'a str,
}

impl<'a> Str<'a> {
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The text if it has no escape sequence (every value a parser reads is such a string).
    pub fn plain(&self) -> Option<&'a str> {
        (!self.raw.contains('\\')).then_some(self.raw)
    }
}

/// An object's text, braces included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object<'a> {
    text: &'a str,
}

/// An array's text, brackets included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array<'a> {
    text: &'a str,
}

impl<'a> Value<'a> {
    pub fn as_object(self) -> Option<Object<'a>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(self) -> Option<Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A string without escapes.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Value::String(s) => s.plain(),
            _ => None,
        }
    }

    pub fn as_u64(self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub fn is_null(self) -> bool {
        self == Value::Null
    }

    /// What a parser's error message calls this type.
    pub fn kind(self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl<'a> Object<'a> {
    /// The value of the first member named `key` (keys are compared as written).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| k.raw == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> Members<'a> {
        Members {
            text: self.text,
            pos: 1,
        }
    }
}

impl<'a> Array<'a> {
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            text: self.text,
            pos: 1,
        }
    }

    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        self.iter().nth(index)
    }
}

/// Members of an object, in order.
pub struct Members<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Str<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        let mut pos = skip_ws(bytes, self.pos);
        if bytes.get(pos) == Some(&b',') {
            pos = skip_ws(bytes, pos + 1);
        }
        if bytes.get(pos) != Some(&b'"') {
            return None;
        }
        let (key, after_key) = read_value(self.text, pos)?;
        let Value::String(key) = key else { return None };
        let colon = skip_ws(bytes, after_key);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let (value, end) = read_value(self.text, skip_ws(bytes, colon + 1))?;
        self.pos = end;
        Some((key, value))
    }
}

/// Elements of an array, in order.
pub struct Elements<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.text.as_bytes();
        let mut pos = skip_ws(bytes, self.pos);
        if bytes.get(pos) == Some(&b',') {
            pos = skip_ws(bytes, pos + 1);
        }
        if matches!(bytes.get(pos), None | Some(b']')) {
            return None;
        }
        let (value, end) = read_value(self.text, pos)?;
        self.pos = end;
        Some(value)
    }
}

/// Checks `text` against the JSON grammar and returns its root value.
pub fn parse(text: &str) -> Result<Value<'_>, JsonError> {
    validate(text.as_bytes())?;
    let bytes = text.as_bytes();
    read_value(text, skip_ws(bytes, 0))
        .map(|(v, _)| v)
        .ok_or(JsonError::Syntax { at: 0 })
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// Reads the value starting at `pos` of already validated text; returns it and the position
/// just after it.
fn read_value(text: &str, pos: usize) -> Option<(Value<'_>, usize)> {
    let bytes = text.as_bytes();
    let end = skip_value(bytes, pos)?;
    let slice = text.get(pos..end)?;
    let value = match bytes.get(pos)? {
        b'{' => Value::Object(Object { text: slice }),
        b'[' => Value::Array(Array { text: slice }),
        b'"' => Value::String(Str {
            raw: slice.get(1..slice.len().saturating_sub(1))?,
        }),
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Null,
        _ => Value::Number(slice),
    };
    Some((value, end))
}

/// The position just after the value starting at `pos` (structure is trusted: validated).
fn skip_value(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => skip_string(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        b't' | b'n' => Some(pos + 4),
        b'f' => Some(pos + 5),
        _ => {
            let mut i = pos;
            while matches!(
                bytes.get(i),
                Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            ) {
                i += 1;
            }
            (i > pos).then_some(i)
        }
    }
}

/// The position just after the string whose opening quote is at `pos`.
fn skip_string(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Full grammar check (RFC 8259), iterative, with a fixed-size container stack.
fn validate(bytes: &[u8]) -> Result<(), JsonError> {
    let err = |at: usize| JsonError::Syntax { at };
    // true = object, false = array
    let mut stack = [false; MAX_DEPTH];
    let mut depth = 0usize;
    let mut pos = skip_ws(bytes, 0);
    // Expecting a value here (after '[', ':', ',' in arrays, or at the start).
    'value: loop {
        pos = skip_ws(bytes, pos);
        match bytes.get(pos) {
            Some(b'{') | Some(b'[') => {
                let is_object = bytes.get(pos) == Some(&b'{');
                if depth == MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                if let Some(slot) = stack.get_mut(depth) {
                    *slot = is_object;
                }
                depth += 1;
                pos = skip_ws(bytes, pos + 1);
                let close = if is_object { b'}' } else { b']' };
                if bytes.get(pos) == Some(&close) {
                    depth -= 1;
                    pos += 1;
                } else if is_object {
                    pos = validate_key(bytes, pos)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            Some(b'"') => pos = validate_string(bytes, pos)?,
            Some(b't') if bytes.get(pos..pos + 4) == Some(b"true") => pos += 4,
            Some(b'f') if bytes.get(pos..pos + 5) == Some(b"false") => pos += 5,
            Some(b'n') if bytes.get(pos..pos + 4) == Some(b"null") => pos += 4,
            Some(b'-' | b'0'..=b'9') => pos = validate_number(bytes, pos)?,
            _ => return Err(err(pos)),
        }
        // After a value: close containers or continue with ','.
        loop {
            pos = skip_ws(bytes, pos);
            if depth == 0 {
                return if pos == bytes.len() {
                    Ok(())
                } else {
                    Err(err(pos))
                };
            }
            let in_object = stack.get(depth - 1).copied().unwrap_or(false);
            match bytes.get(pos) {
                Some(b',') => {
                    pos = skip_ws(bytes, pos + 1);
                    if in_object {
                        pos = validate_key(bytes, pos)?;
                    }
                    continue 'value;
                }
                Some(b'}') if in_object => {
                    depth -= 1;
                    pos += 1;
                }
                Some(b']') if !in_object => {
                    depth -= 1;
                    pos += 1;
                }
                _ => return Err(err(pos)),
            }
        }
    }
}

/// A member key and its colon; returns the position after the colon.
fn validate_key(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(JsonError::Syntax { at: pos });
    }
    let after = skip_ws(bytes, validate_string(bytes, pos)?);
    if bytes.get(after) != Some(&b':') {
        return Err(JsonError::Syntax { at: after });
    }
    Ok(after + 1)
}

fn validate_string(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    let mut i = pos + 1;
    loop {
        match bytes.get(i) {
            None => return Err(JsonError::Syntax { at: i }),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = bytes.get(i + 2..i + 6).ok_or(JsonError::Syntax { at: i })?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(JsonError::Syntax { at: i });
                    }
                    i += 6;
                }
                _ => return Err(JsonError::Syntax { at: i }),
            },
            Some(&b) if b < 0x20 => return Err(JsonError::Syntax { at: i }),
            Some(_) => i += 1,
        }
    }
}

fn validate_number(bytes: &[u8], pos: usize) -> Result<usize, JsonError> {
    let err = |at| JsonError::Syntax { at };
    let digits = |mut i: usize| {
        let start = i;
        while matches!(bytes.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        (i, i - start)
    };
    let mut i = pos;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i).0,
        _ => return Err(err(i)),
    }
    if bytes.get(i) == Some(&b'.') {
        let (end, n) = digits(i + 1);
        if n == 0 {
            return Err(err(end));
        }
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (end, n) = digits(i);
        if n == 0 {
            return Err(err(end));
        }
        i = end;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_members_and_elements() {
        let text =
            r#" {"a":1, "b" : [true,{"c":"x\"y"},null, -1.5e3], "d":{"e":"f"}, "n":0.00001234} "#;
        let root = parse(text).unwrap().as_object().unwrap();
        assert_eq!(root.get("a"), Some(Value::Number("1")));
        assert_eq!(root.get("n"), Some(Value::Number("0.00001234")));
        let b = root.get("b").unwrap().as_array().unwrap();
        let items: Vec<Value<'_>> = b.iter().collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Value::Bool(true));
        let c = items[1].as_object().unwrap().get("c").unwrap();
        assert_eq!(c.as_str(), None, "escaped strings are not plain");
        assert!(matches!(c, Value::String(s) if s.raw() == r#"x\"y"#));
        assert!(items[2].is_null());
        assert_eq!(items[3], Value::Number("-1.5e3"));
        assert_eq!(
            root.get("d")
                .and_then(|d| d.as_object())
                .and_then(|d| d.get("e"))
                .and_then(Value::as_str),
            Some("f")
        );
        assert_eq!(root.get("zz"), None);
        assert_eq!(parse("[]").unwrap().as_array().unwrap().iter().count(), 0);
        assert_eq!(parse("{}").unwrap().as_object().unwrap().iter().count(), 0);
        assert_eq!(
            parse("18446744073709551615").unwrap().as_u64(),
            Some(u64::MAX)
        );
    }

    #[test]
    fn rejects_what_is_not_json() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let cases: &[&str] = &[
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\u{1}b\"",
            "{} {}",
            "[1]]",
            "pong",
            "NaN",
            "[\"a\",]",
        ];
        for text in cases {
            assert!(parse(text).is_err(), "{text:?} accepted");
        }
        assert_eq!(parse(&deep), Err(JsonError::TooDeep));
        let ok_deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok_deep).is_ok());
    }

    proptest! {
        /// The validator agrees with serde_json on arbitrary near-JSON text.
        #[test]
        fn agrees_with_serde_json(text in r#"[\[\]{}",:0-9a-z\\ .eE+\-]{0,40}"#) {
            let ours = parse(&text).is_ok();
            let reference = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            prop_assert_eq!(ours, reference, "{:?}", text);
        }

        #[test]
        fn never_panics_on_any_text(text in ".{0,200}") {
            if let Ok(value) = parse(&text) {
                if let Some(o) = value.as_object() { let _ = o.iter().count(); }
                if let Some(a) = value.as_array() { let _ = a.iter().count(); }
            }
        }
    }
}
