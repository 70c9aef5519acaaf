//! Platforms (`os/arch[/variant]`) and how an index entry is matched against one, following
//! containerd's `platforms` package: architectures are normalised (`x86_64` → `amd64`,
//! `aarch64` → `arm64`), and `arm64` with no variant equals `arm64/v8`.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not `os/arch` or `os/arch/variant`.
    #[error("platform {0:?} is not OS/ARCH or OS/ARCH/VARIANT")]
    Malformed(String),
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::InvalidArgument
    }
}

/// An operating system, architecture and optional variant, normalised.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// A platform from its parts, normalised.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalise_arch(
            &architecture.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase),
        );
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform this binary runs on.
    pub fn host() -> Platform {
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, None)
    }

    /// The operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture (`amd64`, `arm64`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant (`v7`, `v8`), if any.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an index entry for `other` can run here. A missing variant on either side
    /// matches, as containerd's default matcher does.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

fn normalise_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match (arch, variant.as_deref()) {
        ("i386", _) => ("386".into(), None),
        ("x86_64" | "x86-64" | "amd64", v) => {
            ("amd64".into(), v.filter(|v| *v != "v1").map(Into::into))
        }
        ("aarch64" | "arm64", Some("8" | "v8") | None) => ("arm64".into(), None),
        ("aarch64", v) => ("arm64".into(), v.map(Into::into)),
        ("armhf", _) => ("arm".into(), Some("v7".into())),
        ("armel", _) => ("arm".into(), Some("v6".into())),
        ("arm", None | Some("7")) => ("arm".into(), Some("v7".into())),
        ("arm", Some(v @ ("5" | "6" | "8"))) => ("arm".into(), Some(format!("v{v}"))),
        (a, v) => (a.into(), v.map(Into::into)),
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(Error::Malformed(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("Linux/AMD64", "linux/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<Platform>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v2/x",
            "linux/am d64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_like_containerd() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(p("linux/amd64").matches(&p("linux/amd64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
    }
}
