//! Image references, parsed and normalised exactly as Docker and containerd do
//! (distribution/reference `ParseNormalizedNamed` followed by `TagNameOnly`):
//! the default registry is `docker.io`, single-component Docker Hub names get `library/`,
//! and a reference with neither tag nor digest gets `:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Nothing to parse.
    #[error("image reference is empty")]
    Empty,
    /// The repository path has upper-case letters, which Docker forbids.
    #[error("image reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// The repository path has a component that is not `[a-z0-9]+` joined by `.`, `_`, `__` or `-`.
    #[error("image reference {reference:?}: invalid repository path component {component:?}")]
    BadComponent {
        /// The whole reference.
        reference: String,
        /// The offending component.
        component: String,
    },
    /// The registry host (or its port) is malformed.
    #[error("image reference {reference:?}: invalid registry host {host:?}")]
    BadHost {
        /// The whole reference.
        reference: String,
        /// The offending host.
        host: String,
    },
    /// The tag is not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("image reference {reference:?}: invalid tag {tag:?}")]
    BadTag {
        /// The whole reference.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest after `@` is malformed.
    #[error("image reference {reference:?}: {source}")]
    BadDigest {
        /// The whole reference.
        reference: String,
        /// Why the digest is invalid.
        source: crate::digest::Error,
    },
    /// The repository name is longer than 255 characters.
    #[error("image reference {0:?}: repository name is longer than 255 characters")]
    TooLong(String),
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::InvalidArgument
    }
}

/// A normalised image reference: registry, repository, and a tag, a digest, or both.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host, with its port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<Digest> {
        self.digest
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same name pinned to `digest` (no tag), as containerd records `repo_digests`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            tag: None,
            ..self.clone()
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse().map_err(|source| Error::BadDigest {
                    reference: s.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a host:port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(Error::BadTag {
                reference: s.to_owned(),
                tag: tag.to_owned(),
            });
        }
        let (registry, repository) = split_registry(name);
        if !valid_host(registry) {
            return Err(Error::BadHost {
                reference: s.to_owned(),
                host: registry.to_owned(),
            });
        }
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        if repository.is_empty() {
            return Err(Error::Empty);
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::Uppercase(s.to_owned()));
        }
        for component in repository.split('/') {
            if !valid_component(component) {
                return Err(Error::BadComponent {
                    reference: s.to_owned(),
                    component: component.to_owned(),
                });
            }
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(Error::TooLong(s.to_owned()));
        }
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }
}

/// Docker's `splitDockerDomain`: the first component is a registry only if it looks like a
/// host (has a `.` or `:`, is `localhost`, or has upper-case letters).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("ok", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5)
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.20", "docker.io/library/alpine:3.20"),
            ("library/alpine", "docker.io/library/alpine:latest"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("index.docker.io/alpine", "docker.io/library/alpine:latest"),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
            ("ghcr.io/org/app:1.0", "ghcr.io/org/app:1.0"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("a.b-c.io/x__y/z-w.q", "a.b-c.io/x__y/z-w.q:latest"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v2",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v2",
            ),
        ];
        for (input, want) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    #[test]
    fn keeps_digest_without_adding_a_tag() {
        let r: Reference = format!("alpine@{D}").parse().unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), D);
        let r: Reference = format!("localhost:5000/app:v1@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.manifest_reference(), D, "the digest wins over the tag");
    }

    #[test]
    fn rejects_invalid_references() {
        let cases = [
            "",
            "Alpine",
            "docker.io/Library/alpine",
            "alpine:",
            "alpine:-bad",
            "alpine@sha256:abc",
            "alpine@md5:abc",
            "a//b",
            "-a/b",
            "a/b-",
            "host:port/app",
            "exa_mple.com/app",
            "app:tag:tag",
            "a..b",
        ];
        for input in cases {
            assert!(
                input.parse::<Reference>().is_err(),
                "{input:?} should be rejected"
            );
        }
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(matches!(long.parse::<Reference>(), Err(Error::TooLong(_))));
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(
            host in prop::option::of("[a-z][a-z0-9]{0,8}\\.(io|com)(:[0-9]{1,5})?"),
            path in prop::collection::vec("[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?", 1..4),
            tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in prop::option::of(prop::array::uniform32(any::<u8>())),
        ) {
            let mut s = host.map(|h| format!("{h}/")).unwrap_or_default();
            s.push_str(&path.join("/"));
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            if let Some(d) = &digest { s.push_str("@sha256:"); s.push_str(&hex::encode(d)); }
            let first: Reference = s.parse().unwrap();
            let again: Reference = first.to_string().parse().unwrap();
            prop_assert_eq!(&first, &again);
            prop_assert_eq!(first.to_string(), again.to_string());
        }
    }
}
