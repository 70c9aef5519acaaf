//! Mirrors and pull-through caches, tried in order before a registry itself, keeping the image's
//! repository path. Configured per registry in Hoist's config, or read from containerd's
//! `hosts.toml` layout (`DIR/HOST[:PORT]/hosts.toml` with `server`, `[host."URL"]`,
//! `capabilities`, `ca`, `skip_verify`, `header`) so that operators configure them once. A
//! `ca` or `skip_verify` applies to the host it is written for only (see [`super::tls`]).
//!
//! As in containerd, only a host with the `resolve` capability is asked which manifest a tag
//! names (or for anything else not addressed by digest); a `pull`-only host serves manifests
//! and blobs by digest, which the puller verifies, and so cannot substitute another image.
//! Mirrors in Hoist's own config resolve, as containerd's `registry.mirrors` do.
//!
//! Header values can be credentials (`Authorization`): they are marked sensitive, `Debug`
//! shows their names only, and no error quotes a value or a line of the file.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};

use super::tls::HostTls;

/// One mirror endpoint.
#[derive(Clone)]
pub struct Mirror {
    /// `scheme://host[:port][/prefix]`; requests go to `BASE/v2/REPOSITORY/…`.
    pub base: reqwest::Url,
    /// Extra headers sent to this mirror (hosts.toml `header`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Its CA files and `skip_verify` (hosts.toml), for connections to its host only.
    pub tls: HostTls,
    /// Whether it may be asked for what is not addressed by digest (a manifest by tag):
    /// hosts.toml `resolve` capability. `false`: manifests and blobs by digest only.
    pub resolve: bool,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, Redacted)> = self
            .headers
            .iter()
            .map(|(name, _)| (name.as_str(), Redacted))
            .collect();
        f.debug_struct("Mirror")
            .field("base", &super::display_url(&self.base))
            .field("headers", &headers)
            .field("tls", &self.tls)
            .field("resolve", &self.resolve)
            .finish()
    }
}

/// `url` as written, with anything before an `@` in its authority (a user and password)
/// replaced by `…`, for error messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => authority.to_owned(),
    };
    let scheme = if scheme.is_empty() && !url.contains("://") {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{authority}{path}")
}

/// Whether `url` is `…/v2/REPOSITORY/manifests/DIGEST` or `…/blobs/DIGEST`: content whose
/// bytes are checked against its address, as opposed to a tag, a tag list or the API root.
fn by_digest(url: &reqwest::Url) -> bool {
    let Some(rest) = url.path().strip_prefix("/v2/") else {
        return false;
    };
    let mut segments = rest.rsplit('/');
    let (Some(reference), Some(kind), Some(_repository)) =
        (segments.next(), segments.next(), segments.next())
    else {
        return false;
    };
    matches!(kind, "manifests" | "blobs") && reference.parse::<crate::digest::Digest>().is_ok()
}

/// Stands for a header value in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a mirror or a hosts.toml is not usable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a URL.
    #[error("mirror {0:?} is not an http(s) URL")]
    BadUrl(String),
    /// A hosts.toml could not be parsed.
    #[error("{}: {source}", path.display())]
    Hosts {
        /// The file.
        path: PathBuf,
        /// Why.
        source: HostsError,
    },
}

/// Why the text of a hosts.toml is not usable. No variant carries a header value or a line of
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// Not TOML, or not of the hosts.toml shape. `message` is the parser's, with any quoted
    /// string in it elided.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// `server` or a `[host."…"]` URL is not an http(s) URL.
    #[error("{0:?} is not an http(s) URL")]
    BadUrl(String),
    /// A header name is not a valid HTTP header name.
    #[error("host {host}: header name {name:?} is not valid")]
    HeaderName {
        /// The host it is written for.
        host: String,
        /// The name.
        name: String,
    },
    /// A header value is not a valid HTTP header value (the value itself is not repeated).
    #[error("host {host}: the value of header {name:?} is not a valid header value")]
    HeaderValue {
        /// The host it is written for.
        host: String,
        /// The header's name.
        name: String,
    },
}

impl From<Error> for HostsError {
    fn from(error: Error) -> HostsError {
        match error {
            Error::BadUrl(url) => HostsError::BadUrl(url),
            Error::Hosts { source, .. } => source,
        }
    }
}

impl HostsError {
    fn syntax(text: &str, error: &toml::de::Error) -> HostsError {
        let at = error.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..at).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        HostsError::Syntax {
            line,
            column,
            message: elide_quoted(error.message().trim_end()),
        }
    }
}

/// `message` with the contents of every `"…"` in it replaced by `…`: serde quotes the value it
/// could not take (`invalid type: string "…", expected a map`), which may be a secret. Names
/// of fields are quoted with backticks and stay.
fn elide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    let mut escaped = false;
    for c in message.chars() {
        if inside {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                inside = false;
                out.push_str("…\"");
            }
            continue;
        }
        out.push(c);
        inside = c == '"';
    }
    if inside {
        out.push('…');
    }
    out
}

impl Mirror {
    /// A mirror at `url` with no extra settings, which resolves tags.
    pub fn new(url: &str) -> Result<Mirror, Error> {
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        let bad = || Error::BadUrl(without_userinfo(url));
        let mut base = reqwest::Url::parse(&with_scheme).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad());
        }
        // containerd's host URLs may end in /v2 (and slashes around it, which containerd's
        // path cleaning drops); requests add /v2 themselves.
        let mut path = base.path().trim_end_matches('/');
        while let Some(shorter) = path.strip_suffix("/v2") {
            path = shorter.trim_end_matches('/');
        }
        let path = format!("{path}/");
        base.set_path(&path);
        Ok(Mirror {
            base,
            headers: Vec::new(),
            tls: HostTls::default(),
            resolve: true,
        })
    }

    /// Whether this mirror may be sent `url` (on the upstream registry): anything when it
    /// resolves, else only a manifest or blob by digest, whose answer is checked against it.
    pub fn may_serve(&self, url: &reqwest::Url) -> bool {
        self.resolve || by_digest(url)
    }

    /// `url` (on the upstream registry, `…/v2/…`) on this mirror, or `None` if it is not a
    /// registry API URL.
    pub fn rewrite(&self, url: &reqwest::Url) -> Option<reqwest::Url> {
        let rest = url.path().strip_prefix("/v2/")?;
        let mut out = self.base.join(&format!("v2/{rest}")).ok()?;
        out.set_query(url.query());
        Some(out)
    }
}

// No `Debug` on what is read from the file: header values may be secrets.
#[derive(serde::Deserialize)]
struct HostsToml {
    server: Option<String>,
    ca: Option<CaField>,
    #[serde(default)]
    skip_verify: bool,
    /// In document order (the `toml` crate's `preserve_order`).
    #[serde(default, deserialize_with = "in_order")]
    host: Vec<(String, HostEntry)>,
}

/// A TOML table's entries in the order the deserializer gives them, which with `toml`'s
/// `preserve_order` is the order of the document.
fn in_order<'de, D, V>(deserializer: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: serde::Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

#[derive(serde::Deserialize)]
struct HostEntry {
    capabilities: Option<Vec<String>>,
    ca: Option<CaField>,
    #[serde(default)]
    skip_verify: bool,
    /// In document order, so that headers are sent in the order they are written.
    #[serde(default, deserialize_with = "in_order")]
    header: Vec<(String, HeaderField)>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum CaField {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum HeaderField {
    One(String),
    Many(Vec<String>),
}

/// Mirrors by registry (`*` for every registry).
pub type ByRegistry = HashMap<String, Vec<Mirror>>;

/// What one `HOST/hosts.toml` says.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// `server`: the registry's own URL, when it is not `https://HOST`.
    pub server: Option<reqwest::Url>,
    /// The top-level `ca` and `skip_verify`, for connections to the server only.
    pub tls: HostTls,
    /// The `[host."…"]` entries with the `pull` capability, in file order; those without
    /// `resolve` are asked for content by digest only.
    pub mirrors: Vec<Mirror>,
}

/// Each registry's hosts.toml from a containerd `certs.d`-style directory (`_default` is
/// returned as `*`). Missing directory: nothing.
pub fn read_hosts_dir(dir: &Path) -> Result<HashMap<String, Hosts>, Error> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let path = entry.path().join("hosts.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let registry = entry.file_name().to_string_lossy().into_owned();
        let registry = if registry == "_default" {
            "*".to_owned()
        } else {
            registry
        };
        let hosts = parse_hosts(&text).map_err(|source| Error::Hosts { path, source })?;
        out.insert(registry, hosts);
    }
    Ok(out)
}

fn ca_list(ca: Option<&CaField>) -> Vec<PathBuf> {
    match ca {
        Some(CaField::One(p)) => vec![p.clone()],
        Some(CaField::Many(p)) => p.clone(),
        None => Vec::new(),
    }
}

/// Parses one hosts.toml; hosts keep their order in the file. Hosts without the `pull`
/// capability are skipped, and hosts without `resolve` are not asked for tags (no
/// `capabilities` means all of them, as in containerd); `server` is the registry itself, not
/// a mirror.
pub fn parse_hosts(text: &str) -> Result<Hosts, HostsError> {
    let parsed: HostsToml = toml::from_str(text).map_err(|e| HostsError::syntax(text, &e))?;
    let server = match &parsed.server {
        Some(s) => Some(Mirror::new(s)?.base),
        None => None,
    };
    let mut mirrors = Vec::new();
    for (url, h) in &parsed.host {
        if h.capabilities
            .as_ref()
            .is_some_and(|c| !c.iter().any(|c| c == "pull"))
        {
            continue;
        }
        let mut m = Mirror::new(url)?;
        m.resolve = h
            .capabilities
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == "resolve"));
        m.tls = HostTls {
            ca: ca_list(h.ca.as_ref()),
            skip_verify: h.skip_verify,
        };
        for (name, value) in &h.header {
            let values = match value {
                HeaderField::One(v) => std::slice::from_ref(v),
                HeaderField::Many(v) => v.as_slice(),
            };
            let header_name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| HostsError::HeaderName {
                    host: super::display_url(&m.base),
                    name: name.clone(),
                })?;
            for v in values {
                let mut v = HeaderValue::from_str(v).map_err(|_| HostsError::HeaderValue {
                    host: super::display_url(&m.base),
                    name: name.clone(),
                })?;
                v.set_sensitive(true);
                m.headers.push((header_name.clone(), v));
            }
        }
        mirrors.push(m);
    }
    Ok(Hosts {
        server,
        tls: HostTls {
            ca: ca_list(parsed.ca.as_ref()),
            skip_verify: parsed.skip_verify,
        },
        mirrors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_in_file_order_with_settings() {
        let text = r#"
server = "https://registry-1.docker.io"
ca = ["/etc/certs/hub.pem"]

[host."https://z-mirror.example/v2"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/certs/mirror.pem"
  [host."https://z-mirror.example/v2".header]
    x-team = "web"

[host."http://a-cache.example:5000"]
  capabilities = ["pull"]
  skip_verify = true

[host."https://push-only.example"]
  capabilities = ["push"]
"#;
        let hosts = parse_hosts(text).unwrap();
        assert_eq!(
            hosts.server.as_ref().map(|u| u.as_str()),
            Some("https://registry-1.docker.io/")
        );
        assert_eq!(hosts.tls.ca, [PathBuf::from("/etc/certs/hub.pem")]);
        let mirrors = hosts.mirrors;
        let bases: Vec<&str> = mirrors.iter().map(|m| m.base.as_str()).collect();
        assert_eq!(
            bases,
            ["https://z-mirror.example/", "http://a-cache.example:5000/"]
        );
        assert_eq!(mirrors[0].headers[0].0.as_str(), "x-team");
        assert!(mirrors[1].tls.skip_verify && mirrors[1].tls.ca.is_empty());
        assert_eq!(mirrors[0].tls.ca, [PathBuf::from("/etc/certs/mirror.pem")]);
        assert!(!mirrors[0].tls.skip_verify);
        assert!(
            mirrors[0].resolve && !mirrors[1].resolve,
            "only `resolve` resolves"
        );
        let url = reqwest::Url::parse(
            "https://registry-1.docker.io/v2/library/alpine/blobs/sha256:ab?x=1",
        )
        .unwrap();
        assert_eq!(
            mirrors[1].rewrite(&url).unwrap().as_str(),
            "http://a-cache.example:5000/v2/library/alpine/blobs/sha256:ab?x=1"
        );
        assert!(parse_hosts("[host.\"x\"]\ncapabilities = 3\n").is_err());
    }

    const SECRET: &str = "c2VjcmV0LWluLWhvc3RzLXRvbWw";

    #[test]
    fn debug_shows_header_names_not_values() {
        let text = format!(
            "[host.\"https://m.example\"]\n  [host.\"https://m.example\".header]\n    \
             Authorization = \"Basic {SECRET}\"\n    x-team = [\"{SECRET}-2\"]\n"
        );
        let hosts = parse_hosts(&text).unwrap();
        let names: Vec<&str> = hosts.mirrors[0]
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["authorization", "x-team"], "in file order");
        for shown in [format!("{hosts:?}"), format!("{:#?}", hosts.mirrors)] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(
                shown.contains("authorization") && shown.contains("x-team"),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        // What is sent is still the value itself.
        let sent = hosts.mirrors[0]
            .headers
            .iter()
            .find(|(name, _)| name == http::header::AUTHORIZATION)
            .map(|(_, value)| value.to_str().unwrap());
        assert_eq!(sent, Some(format!("Basic {SECRET}").as_str()));
    }

    #[test]
    fn a_broken_hosts_toml_is_reported_by_line_and_column_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let broken = [
            // Not TOML: the line with the secret is the bad one.
            format!(
                "server = \"https://r.example\"\n[host.\"https://m.example\".header]\n  \
                 Authorization = \"Bearer {SECRET}\" trailing\n"
            ),
            // TOML, but a header table written as a string: serde quotes what it got.
            format!(
                "server = \"https://r.example\"\n[host.\"https://m.example\"]\n  \
                 header = \"Authorization: Bearer {SECRET}\"\n"
            ),
            // A header value that HTTP does not allow.
            format!(
                "[host.\"https://m.example\".header]\n  Authorization = \"Bearer {SECRET}\\n\"\n"
            ),
        ];
        let expected = ["line 3, column ", "line 3, column ", "Authorization"];
        for (text, expected) in broken.iter().zip(expected) {
            let registry = dir.path().join("r.example");
            std::fs::create_dir_all(&registry).unwrap();
            std::fs::write(registry.join("hosts.toml"), text).unwrap();
            let error = read_hosts_dir(dir.path()).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains("Bearer"), "{shown}");
            let file = registry.join("hosts.toml");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{}: ", file.display())),
                "{shown}"
            );
            assert!(error.to_string().contains(expected), "{shown}");
        }
    }

    #[test]
    fn a_user_and_password_in_a_mirror_url_are_not_shown() {
        let m = Mirror::new("https://user:pw-sekrit@m.example/v2").unwrap();
        assert_eq!(
            m.base.password(),
            Some("pw-sekrit"),
            "still used for requests"
        );
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("pw-sekrit") && shown.contains("m.example"),
            "{shown}"
        );
        for url in [
            "ftp://user:pw-sekrit@m.example/v2",
            "user:pw-sekrit@m.example:notaport",
        ] {
            let shown = Mirror::new(url).unwrap_err().to_string();
            assert!(!shown.contains("pw-sekrit"), "{shown}");
            assert!(shown.contains("…@m.example"), "{shown}");
        }
        let text = "[host.\"https://u:pw-sekrit@m.example\".header]\n  \"a b\" = \"1\"\n";
        let shown = parse_hosts(text).unwrap_err().to_string();
        assert!(
            !shown.contains("pw-sekrit") && shown.contains("m.example"),
            "{shown}"
        );
    }

    #[test]
    fn a_pull_only_mirror_is_sent_content_by_digest_only() {
        let text = "[host.\"http://pull.example\"]\n  capabilities = [\"pull\"]\n\
                    [host.\"http://all.example\"]\n";
        let hosts = parse_hosts(text).unwrap();
        let (pull_only, all) = (&hosts.mirrors[0], &hosts.mirrors[1]);
        assert!(all.resolve, "no capabilities: all of them");
        assert!(Mirror::new("https://from-config.example").unwrap().resolve);
        let digest = crate::digest::Digest::of(b"x");
        let url = |path: &str| reqwest::Url::parse(&format!("https://r.example{path}")).unwrap();
        for path in [
            format!("/v2/library/alpine/manifests/{digest}"),
            format!("/v2/a/manifests/b/blobs/{digest}"),
        ] {
            assert!(pull_only.may_serve(&url(&path)), "{path}");
        }
        for path in [
            "/v2/library/alpine/manifests/3.20".to_owned(),
            format!("/v2/a/blobs/{digest}/manifests/latest"),
            "/v2/library/alpine/manifests/sha256:abc".to_owned(),
            "/v2/library/alpine/tags/list".to_owned(),
            format!("/v2/manifests/{digest}"),
            "/v2/".to_owned(),
        ] {
            assert!(!pull_only.may_serve(&url(&path)), "{path}");
            assert!(all.may_serve(&url(&path)), "{path}");
        }
    }

    fn mirror_bases(text: &str) -> Vec<String> {
        let hosts = parse_hosts(text).unwrap();
        hosts.mirrors.iter().map(|m| m.base.to_string()).collect()
    }

    #[test]
    fn a_table_header_inside_a_string_is_not_a_table() {
        let text = "note = \"\"\"\n[host.\"https://m.example\"]\n\"\"\"\n\
                    [host.\"https://m.example\"]\n  capabilities = [\"pull\"]\n";
        let bases = mirror_bases(text);
        assert_eq!(bases, ["https://m.example/"]);
    }

    #[test]
    fn hosts_in_document_order_however_they_are_written() {
        let text = "[host.\"https://z.example\"]\n\
                    [host.\"https://m.example\".header]\n  x-a = \"1\"\n\
                    [host.\"https://a.example\"]\n";
        let bases = mirror_bases(text);
        assert_eq!(
            bases,
            [
                "https://z.example/",
                "https://m.example/",
                "https://a.example/"
            ]
        );
    }

    #[test]
    fn slashes_around_a_trailing_v2_are_trimmed() {
        for (url, base) in [
            ("https://m.example//v2", "https://m.example/"),
            ("https://m.example/v2//", "https://m.example/"),
            ("https://m.example/cache//v2/", "https://m.example/cache/"),
            ("https://m.example/a//b", "https://m.example/a//b/"),
        ] {
            assert_eq!(Mirror::new(url).unwrap().base.as_str(), base, "{url}");
        }
        let m = Mirror::new("https://m.example//v2").unwrap();
        let url = reqwest::Url::parse("https://r.example/v2/library/alpine/manifests/3").unwrap();
        assert_eq!(
            m.rewrite(&url).unwrap().as_str(),
            "https://m.example/v2/library/alpine/manifests/3"
        );
    }
}
