//! containerd's filter language, as `Walk` (gRPC `List`) receives it.
//!
//! Grammar (containerd `filters/parser.go`):
//!
//! ```text
//! selectors := selector ("," selector)*
//! selector  := fieldpath (operator value)?
//! fieldpath := field ("." field)*
//! field     := quoted | [A-Za-z0-9_-]+
//! operator  := "==" | "!=" | "~="
//! value     := quoted | [^\s,]+
//! quoted    := a Go string literal, quoted with ", or with / or | (handy for regular expressions)
//! ```
//!
//! A filter string matches when all its selectors do; a list of filter strings matches when any
//! of them does, and an empty list (or an empty string) matches everything. A selector without
//! an operator tests that the field is present; `==` needs the field present and equal; `!=`
//! compares with the empty string when the field is absent, as containerd does. containerd
//! itself sends `labels."containerd.io/snapshot.ref"==<chain id>,parent=="<parent>"` when it
//! looks for a snapshot a remote snapshotter already has.

use regex::Regex;

/// Why a filter could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filter does not follow the grammar.
    #[error("filter {filter:?}: {reason} at byte {pos}")]
    Syntax {
        /// The whole filter string.
        filter: String,
        /// Byte offset of the problem.
        pos: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// The value of a `~=` selector is not a valid regular expression.
    #[error("filter {filter:?}: invalid regular expression: {source}")]
    Regex {
        /// The whole filter string.
        filter: String,
        /// The regex compiler's complaint.
        source: regex::Error,
    },
}

impl Error {
    /// Always [`crate::error::Kind::InvalidArgument`]: the caller sent a bad filter.
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::InvalidArgument
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something a filter can look at: the value at a field path, if present.
pub trait Fields {
    /// The value at `path` (`["labels", "a.b"]`), or `None` when the field is absent.
    fn field(&self, path: &[String]) -> Option<&str>;
}

/// A parsed list of filters: matches when any of them matches.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Each inner list is one filter string: all its selectors must match. No lists at all, or
    /// an empty one, matches everything.
    any: Vec<Vec<Selector>>,
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

impl Filter {
    /// Parses containerd filter strings; the result matches when any of them does.
    pub fn parse_all<S: AsRef<str>>(filters: &[S]) -> Result<Filter> {
        let any = filters
            .iter()
            .map(|f| Parser::new(f.as_ref()).selectors())
            .collect::<Result<_>>()?;
        Ok(Filter { any })
    }

    /// Whether `item` passes the filter.
    pub fn matches(&self, item: &impl Fields) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|all| all.iter().all(|s| s.matches(item)))
    }
}

impl Selector {
    fn matches(&self, item: &impl Fields) -> bool {
        let value = item.field(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(v) => value == Some(v.as_str()),
            Op::NotEqual(v) => value.unwrap_or("") != v,
            Op::Matches(re) => re.is_match(value.unwrap_or("")),
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

fn is_field_char(c: char) -> bool {
    c == '-' || c == '_' || c.is_ascii_alphanumeric()
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '/' | '|')
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser { input, pos: 0 }
    }

    fn err<T>(&self, reason: &'static str) -> Result<T> {
        Err(Error::Syntax {
            filter: self.input.to_owned(),
            pos: self.pos,
            reason,
        })
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        &self.input[start..self.pos]
    }

    fn selectors(mut self) -> Result<Vec<Selector>> {
        if self.input.is_empty() {
            return Ok(Vec::new());
        }
        let mut all = vec![self.selector()?];
        loop {
            self.skip_space();
            match self.bump() {
                None => return Ok(all),
                Some(',') => all.push(self.selector()?),
                Some(_) => return self.err("expected `,` or the end"),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector> {
        let mut path = vec![self.field()?];
        while self.peek() == Some('.') {
            self.bump();
            path.push(self.field()?);
        }
        self.skip_space();
        if matches!(self.peek(), None | Some(',')) {
            return Ok(Selector {
                path,
                op: Op::Present,
            });
        }
        let op_pos = self.pos;
        let op = self.take_while(|c| matches!(c, '=' | '!' | '~'));
        if !matches!(op, "==" | "!=" | "~=") {
            self.pos = op_pos;
            return self.err("expected an operator (`==`, `!=` or `~=`)");
        }
        self.skip_space();
        let value = self.value()?;
        let op = match op {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => Op::Matches(Regex::new(&value).map_err(|source| Error::Regex {
                filter: self.input.to_owned(),
                source,
            })?),
        };
        Ok(Selector { path, op })
    }

    fn field(&mut self) -> Result<String> {
        self.skip_space();
        match self.peek() {
            Some(q) if is_quote(q) => self.quoted(),
            _ => {
                let field = self.take_while(is_field_char);
                if field.is_empty() {
                    return self.err("expected a field name or a quoted string");
                }
                Ok(field.to_owned())
            }
        }
    }

    fn value(&mut self) -> Result<String> {
        match self.peek() {
            Some(q) if is_quote(q) => self.quoted(),
            _ => {
                let value = self.take_while(|c| c != ',' && !c.is_whitespace());
                if value.is_empty() {
                    return self.err("expected a value");
                }
                Ok(value.to_owned())
            }
        }
    }

    /// A Go string literal quoted with `"`, `/` or `|` (containerd `filters/quote.go`).
    fn quoted(&mut self) -> Result<String> {
        let quote = self.bump().expect("called with a quote character next");
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return self.err("unterminated quoted string"),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => out.push(self.escape(quote)?),
                Some(c) => out.push(c),
            }
        }
    }

    fn escape(&mut self, quote: char) -> Result<char> {
        let c = match self.bump() {
            Some('a') => '\x07',
            Some('b') => '\x08',
            Some('f') => '\x0c',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\x0b',
            Some('\\') => '\\',
            Some(c) if c == quote => c,
            Some('x') => return self.code_point(16, 2),
            Some('u') => return self.code_point(16, 4),
            Some('U') => return self.code_point(16, 8),
            Some('0'..='7') => {
                self.pos -= 1; // the first of the three octal digits
                return self.code_point(8, 3);
            }
            _ => return self.err("invalid escape sequence"),
        };
        Ok(c)
    }

    fn code_point(&mut self, radix: u32, digits: usize) -> Result<char> {
        let start = self.pos;
        let end = start + digits;
        let Some(text) = self.input.get(start..end) else {
            return self.err("truncated escape sequence");
        };
        self.pos = end;
        u32::from_str_radix(text, radix)
            .ok()
            .filter(|_| text.chars().all(|c| c.is_digit(radix)))
            .filter(|&v| radix != 8 || v <= 0xff)
            .and_then(char::from_u32)
            .map_or_else(|| self.err("invalid escape sequence"), Ok)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Item(BTreeMap<&'static str, &'static str>);

    impl Fields for Item {
        fn field(&self, path: &[String]) -> Option<&str> {
            self.0.get(path.join(".").as_str()).copied()
        }
    }

    fn item() -> Item {
        Item(BTreeMap::from([
            ("name", "sha256:abc"),
            ("parent", ""),
            ("kind", "committed"),
            ("labels.containerd.io/snapshot.ref", "sha256:abc"),
            ("labels.a.b", "x y"),
        ]))
    }

    #[test]
    fn matches_like_containerd() {
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&[""], true),
            (&["name==sha256:abc"], true),
            (&["name==sha256:abd"], false),
            (&["name!=sha256:abd"], true),
            (&["missing!=x"], true),
            (&["missing==x"], false),
            (&["missing"], false),
            (&["kind"], true),
            (&["parent==\"\""], true),
            (
                &["labels.\"containerd.io/snapshot.ref\"==sha256:abc,parent==\"\""],
                true,
            ),
            (
                &["labels.\"containerd.io/snapshot.ref\"==sha256:abc,parent==\"x\""],
                false,
            ),
            (&["labels.a.b==\"x y\""], true),
            (&["kind==active", "kind==committed"], true),
            (&["kind==active", "kind==view"], false),
            (&["name~=^sha256:a"], true),
            (&["name~=/b.$/"], true),
            (&["name~=|^x|"], false),
            (&[" kind == committed , name==sha256:abc"], true),
            (&["labels.\"a\\x2eb\"==\"x\\u0020y\""], true),
        ];
        for (filters, want) in cases {
            let filter = Filter::parse_all(filters).unwrap();
            assert_eq!(filter.matches(&item()), *want, "{filters:?}");
        }
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in [
            "name=x",
            "name==",
            "name===x",
            ".name",
            "name==x y",
            "labels.\"unterminated==x",
            "name==\"bad\\q\"",
            "name~=(",
            ",",
        ] {
            let err = Filter::parse_all(&[bad]).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::InvalidArgument, "{bad}");
        }
    }
}
