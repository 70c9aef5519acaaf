//! The images a Dockerfile builds `FROM`: build-stage names and `scratch` skipped, `$VAR` and
//! `${VAR}` replaced by the defaults of `ARG`s declared before the first `FROM` (the only ones
//! `FROM` can see), and `${VAR:-default}` by its default when the `ARG` has none.

use std::collections::HashMap;

/// Why the Dockerfile's base images cannot be determined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A `FROM` without an image.
    #[error("Dockerfile line {line}: FROM without an image")]
    EmptyFrom {
        /// 1-based line.
        line: usize,
    },
    /// A variable without a value known before the build.
    #[error("Dockerfile line {line}: {image:?} uses ${name}, which has no default")]
    Unresolved {
        /// 1-based line.
        line: usize,
        /// The image as written.
        image: String,
        /// The variable.
        name: String,
    },
    /// A `FROM` image that expands to nothing, like `${TAG:-}` with `TAG` unset.
    #[error("Dockerfile line {line}: FROM {image:?} expands to an empty name")]
    Blank {
        /// 1-based line.
        line: usize,
        /// The image as written.
        image: String,
    },
    /// No `FROM` at all.
    #[error("Dockerfile has no FROM line")]
    NoFrom,
}

/// Logical lines (continuations joined, comments and blank lines dropped), with the number of
/// the line each starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if current.is_some() && trimmed.starts_with('#') {
            continue;
        }
        let (continued, body) = match trimmed.strip_suffix('\\') {
            Some(b) => (true, b),
            None => (false, trimmed),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body.trim());
        if !continued {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

fn expand(word: &str, args: &HashMap<String, String>, line: usize) -> Result<String, Error> {
    let unresolved = |name: &str| Error::Unresolved {
        line,
        image: word.to_owned(),
        name: name.to_owned(),
    };
    let mut out = String::new();
    let mut rest = word;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let (name, default, len) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| unresolved(inner))?;
            let body = &inner[..end];
            match body.split_once(":-") {
                Some((n, d)) => (n, Some(d), end + 2),
                None => (body, None, end + 2),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], None, end)
        };
        let value = args
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .or(default)
            .ok_or_else(|| unresolved(name))?;
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The base images of `text`, in order, without duplicates.
pub fn base_images(text: &str) -> Result<Vec<String>, Error> {
    let mut args = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut seen_from = false;
    for (line, l) in logical_lines(text) {
        let mut words = l.split_whitespace();
        let instruction = words.next().unwrap_or_default().to_ascii_uppercase();
        match instruction.as_str() {
            "ARG" if !seen_from => {
                for decl in words {
                    let (name, value) = decl.split_once('=').unwrap_or((decl, ""));
                    let value = value.trim_matches(|c| c == '"' || c == '\'');
                    args.insert(name.to_owned(), value.to_owned());
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let written = rest.first().ok_or(Error::EmptyFrom { line })?;
                let image = expand(written, &args, line)?;
                if image.is_empty() {
                    return Err(Error::Blank {
                        line,
                        image: (*written).to_owned(),
                    });
                }
                let is_stage = stages.contains(&image.to_ascii_lowercase());
                if let [_, r#as, name] = rest.as_slice()
                    && r#as.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_ascii_lowercase());
                }
                if !is_stage && image != "scratch" && !images.contains(&image) {
                    images.push(image);
                }
            }
            _ => {}
        }
    }
    if !seen_from {
        return Err(Error::NoFrom);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_with_stages_args_and_continuations() {
        let text = r#"
# syntax=docker/dockerfile:1
ARG REGISTRY=123456789012.dkr.ecr.us-east-1.amazonaws.com
ARG TAG="22.04"
ARG EMPTY
FROM --platform=linux/amd64 ${REGISTRY}/private-ubuntu:$TAG AS base
RUN echo hi
FROM base AS build
FROM \
    golang:1.22 AS tools
FROM ${EMPTY:-alpine}:3.20
FROM scratch
COPY --from=build /x /x
FROM BASE
"#;
        assert_eq!(
            base_images(text).unwrap(),
            [
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/private-ubuntu:22.04",
                "golang:1.22",
                "alpine:3.20"
            ]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(base_images("RUN x\n"), Err(Error::NoFrom));
        assert_eq!(base_images("FROM\n"), Err(Error::EmptyFrom { line: 1 }));
        assert!(matches!(
            base_images("FROM $NOPE/x\n"),
            Err(Error::Unresolved { line: 1, .. })
        ));
        assert_eq!(
            base_images("ARG TAG\nFROM ${TAG:-} AS x\n"),
            Err(Error::Blank {
                line: 2,
                image: "${TAG:-}".into()
            })
        );
        // An ARG after the first FROM is not visible to later FROM lines' defaults.
        assert!(base_images("FROM a\nARG X=b\nFROM $X\n").is_err());
    }
}
