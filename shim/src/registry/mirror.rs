//! Mirrors and pull-through caches, tried in order before a registry itself, keeping the image's
//! repository path. Configured per registry in Hoist's config, or read from containerd's
//! `hosts.toml` layout (`DIR/HOST[:PORT]/hosts.toml` with `server`, `[host."URL"]`,
//! `capabilities`, `ca`, `skip_verify`, `header`) so that operators configure them once. A
//! `ca` or `skip_verify` applies to the host it is written for only (see [`super::tls`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};

use super::tls::HostTls;

/// One mirror endpoint.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// `scheme://host[:port][/prefix]`; requests go to `BASE/v2/REPOSITORY/…`.
    pub base: reqwest::Url,
    /// Extra headers sent to this mirror (hosts.toml `header`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Its CA files and `skip_verify` (hosts.toml), for connections to its host only.
    pub tls: HostTls,
}

/// Why a mirror or a hosts.toml is not usable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a URL.
    #[error("mirror {0:?} is not an http(s) URL")]
    BadUrl(String),
    /// A hosts.toml could not be read or parsed.
    #[error("{path}: {detail}")]
    Hosts {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl Mirror {
    /// A mirror at `url` with no extra settings.
    pub fn new(url: &str) -> Result<Mirror, Error> {
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        let mut base = reqwest::Url::parse(&with_scheme).map_err(|_| Error::BadUrl(url.into()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::BadUrl(url.into()));
        }
        // containerd's host URLs may end in /v2; requests add it themselves.
        let path = base
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/v2")
            .to_owned();
        base.set_path(&format!("{path}/"));
        Ok(Mirror {
            base,
            headers: Vec::new(),
            tls: HostTls::default(),
        })
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

#[derive(Debug, serde::Deserialize)]
struct HostsToml {
    server: Option<String>,
    ca: Option<CaField>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    host: HashMap<String, HostEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct HostEntry {
    capabilities: Option<Vec<String>>,
    ca: Option<CaField>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    header: HashMap<String, HeaderField>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum CaField {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Debug, serde::Deserialize)]
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
    /// The `[host."…"]` entries with the `pull` capability, in file order.
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
        let hosts = parse_hosts(&text).map_err(|detail| Error::Hosts { path, detail })?;
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

/// Parses one hosts.toml; hosts keep their order in the file (TOML tables do not). Hosts
/// without the `pull` capability are skipped; `server` is the registry itself, not a mirror.
pub fn parse_hosts(text: &str) -> Result<Hosts, String> {
    let parsed: HostsToml = toml::from_str(text).map_err(|e| e.to_string())?;
    let order: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix("[host.\"")?.strip_suffix("\"]")?;
            Some(inner.to_owned())
        })
        .collect();
    let server = match &parsed.server {
        Some(s) => Some(Mirror::new(s).map_err(|e| e.to_string())?.base),
        None => None,
    };
    let mut mirrors = Vec::new();
    for url in order {
        let Some(h) = parsed.host.get(&url) else {
            continue;
        };
        if h.capabilities
            .as_ref()
            .is_some_and(|c| !c.iter().any(|c| c == "pull"))
        {
            continue;
        }
        let mut m = Mirror::new(&url).map_err(|e| e.to_string())?;
        m.tls = HostTls {
            ca: ca_list(h.ca.as_ref()),
            skip_verify: h.skip_verify,
        };
        for (name, value) in &h.header {
            let values = match value {
                HeaderField::One(v) => vec![v.clone()],
                HeaderField::Many(v) => v.clone(),
            };
            for v in values {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
                let v = HeaderValue::from_str(&v).map_err(|e| e.to_string())?;
                m.headers.push((name, v));
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
}
