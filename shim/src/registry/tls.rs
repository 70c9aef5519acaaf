//! TLS per host: the CA files and `skip_verify` a hosts.toml (or a mirror) names apply to
//! connections to that host only, as in containerd, never to every registry. One HTTP client is
//! built per distinct setting and chosen by the request URL's host and port.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Error, Options, Result};

/// TLS settings of one host, beyond the system roots and the client-wide `ca_files`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HostTls {
    /// Extra PEM CA files trusted for this host (hosts.toml `ca`).
    pub ca: Vec<PathBuf>,
    /// Whether this host's certificate is not verified (hosts.toml `skip_verify`).
    pub skip_verify: bool,
}

impl HostTls {
    /// Adds `other`'s settings: both sets of CAs are trusted, and verification is skipped if
    /// either says so.
    pub fn merge(&mut self, other: &HostTls) {
        for ca in &other.ca {
            if !self.ca.contains(ca) {
                self.ca.push(ca.clone());
            }
        }
        self.skip_verify |= other.skip_verify;
    }

    fn is_default(&self) -> bool {
        *self == HostTls::default()
    }
}

/// `host:port` of `url` (the scheme's port when none is written): the key TLS settings are
/// looked up by.
pub fn authority(url: &reqwest::Url) -> Option<String> {
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// The HTTP clients of a registry client: one for hosts without settings of their own, one per
/// distinct [`HostTls`] shared by the hosts that have it.
#[derive(Debug)]
pub(crate) struct Clients {
    default: reqwest::Client,
    by_host: HashMap<String, reqwest::Client>,
}

impl Clients {
    /// Builds the clients; `hosts` maps [`authority`] keys to their settings.
    pub(crate) fn new(options: &Options, hosts: &HashMap<String, HostTls>) -> Result<Clients> {
        let global = read_certs(&options.ca_files)?;
        let default = build(options, &global, false)?;
        let mut built: HashMap<&HostTls, reqwest::Client> = HashMap::new();
        let mut by_host = HashMap::new();
        for (host, tls) in hosts {
            if tls.is_default() {
                continue;
            }
            let client = match built.get(tls) {
                Some(c) => c.clone(),
                None => {
                    let mut certs = global.clone();
                    certs.extend(read_certs(&tls.ca)?);
                    let c = build(options, &certs, tls.skip_verify)?;
                    built.insert(tls, c.clone());
                    c
                }
            };
            by_host.insert(host.clone(), client);
        }
        Ok(Clients { default, by_host })
    }

    /// The client for requests to `url`'s host.
    pub(crate) fn for_url(&self, url: &reqwest::Url) -> &reqwest::Client {
        authority(url)
            .and_then(|a| self.by_host.get(&a))
            .unwrap_or(&self.default)
    }

    /// The client for hosts without settings of their own.
    pub(crate) fn default(&self) -> &reqwest::Client {
        &self.default
    }
}

fn read_certs(files: &[PathBuf]) -> Result<Vec<reqwest::Certificate>> {
    let mut certs = Vec::new();
    for path in files {
        let pem = std::fs::read(path).map_err(|e| Error::Ca {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        certs.extend(
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Ca {
                path: path.clone(),
                detail: e.to_string(),
            })?,
        );
    }
    Ok(certs)
}

fn build(
    options: &Options,
    certs: &[reqwest::Certificate],
    skip_verify: bool,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.progress_timeout)
        .pool_max_idle_per_host(options.pool_per_host)
        // reqwest drops Authorization when a redirect changes host (blob storage).
        .redirect(reqwest::redirect::Policy::limited(10))
        .danger_accept_invalid_certs(skip_verify);
    for cert in certs {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder.build().map_err(Error::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_includes_the_default_port() {
        let cases = [
            ("https://r.example/v2/", "r.example:443"),
            ("http://r.example/v2/", "r.example:80"),
            ("https://127.0.0.1:5000/x", "127.0.0.1:5000"),
        ];
        for (url, want) in cases {
            assert_eq!(
                authority(&reqwest::Url::parse(url).unwrap()).as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn settings_apply_to_their_host_only() {
        let hosts = HashMap::from([(
            "a.example:443".to_owned(),
            HostTls {
                ca: Vec::new(),
                skip_verify: true,
            },
        )]);
        let clients = Clients::new(&Options::default(), &hosts).unwrap();
        let a = reqwest::Url::parse("https://a.example/v2/").unwrap();
        let b = reqwest::Url::parse("https://b.example/v2/").unwrap();
        assert!(!std::ptr::eq(clients.for_url(&a), clients.default()));
        assert!(std::ptr::eq(clients.for_url(&b), clients.default()));
    }

    #[test]
    fn merge_unions_cas_and_skips_if_either_does() {
        let mut a = HostTls {
            ca: vec!["/a.pem".into()],
            skip_verify: false,
        };
        a.merge(&HostTls {
            ca: vec!["/a.pem".into(), "/b.pem".into()],
            skip_verify: true,
        });
        assert_eq!(a.ca, [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]);
        assert!(a.skip_verify);
    }
}
