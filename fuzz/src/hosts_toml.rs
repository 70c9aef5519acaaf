//! containerd's `hosts.toml` (one file of the `certs.d` layout), as Hoist reads it for mirrors
//! (`hoist::registry::mirror::parse_hosts`). The fuzz target `hosts_toml` and the stable corpus
//! replay (`shim/tests/it/corpus.rs`, which includes this file) both call [`hosts_toml`].
//!
//! What holds for any input that parses, checked against a model built here from the TOML
//! itself:
//! * parsing is deterministic (up to the order of headers, see `Seen`);
//! * the mirrors are exactly the entries of the `host` table whose `capabilities` are absent
//!   or include `pull`, in document order, resolving tags when `capabilities` are absent or
//!   include `resolve` (the model reads the TOML value, whose tables keep
//!   document order through the `toml` crate's `preserve_order`, which `hoist` enables), each with its own `skip_verify`, headers and CA files, and
//!   the top-level `server`, `ca` and `skip_verify` belong to the server alone;
//! * the server and every mirror base are absolute http(s) URLs with a host, ending in `/` and
//!   not in `/v2/` or `//`, read again as themselves, and a registry API URL rewritten onto one keeps its path after the base
//!   and its query;
//! * what was parsed, written back as a hosts.toml, parses to the same.

use std::path::PathBuf;

use hoist::registry::mirror::{Hosts, Mirror, parse_hosts};

/// A parsed mirror in comparable form, headers sorted: spellings of one name in different case
/// (`X-A`, `x-a`) are one header name, which `render` writes as one key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    base: String,
    headers: Vec<(String, String)>,
    ca: Vec<PathBuf>,
    skip_verify: bool,
    resolve: bool,
}

fn seen(m: &Mirror) -> Seen {
    let mut headers: Vec<(String, String)> = m
        .headers
        .iter()
        .map(|(name, value)| {
            let value = std::str::from_utf8(value.as_bytes()).expect("built from a &str");
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect();
    headers.sort();
    Seen {
        base: m.base.to_string(),
        headers,
        ca: m.tls.ca.clone(),
        skip_verify: m.tls.skip_verify,
        resolve: m.resolve,
    }
}

/// A parsed hosts.toml in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    server: Option<String>,
    server_ca: Vec<PathBuf>,
    server_skip_verify: bool,
    mirrors: Vec<Seen>,
}

fn parse(text: &str) -> Option<Parsed> {
    let Hosts {
        server,
        tls,
        mirrors,
    } = parse_hosts(text).ok()?;
    Some(Parsed {
        server: server.map(|s| s.to_string()),
        server_ca: tls.ca,
        server_skip_verify: tls.skip_verify,
        mirrors: mirrors.iter().map(seen).collect(),
    })
}

/// One `hosts.toml`: see the module header for the invariants.
pub fn hosts_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = parse(text);
    assert_eq!(first, parse(text), "parsing is deterministic");
    let Some(parsed) = first else {
        return;
    };
    let Some(expected) = model(text) else {
        return;
    };
    assert_eq!(parsed.server, expected.server, "the server");
    assert_eq!(
        parsed.server_ca, expected.server_ca,
        "the server's CA files"
    );
    assert_eq!(parsed.server_skip_verify, expected.server_skip_verify);
    assert_eq!(
        parsed.mirrors, expected.mirrors,
        "the pull-capable hosts, in file order"
    );
    let mirrors = &parsed.mirrors;
    for base in mirrors.iter().map(|m| &m.base).chain(&parsed.server) {
        base_is_absolute(base);
    }
    let mut bases: Vec<&str> = mirrors.iter().map(|m| m.base.as_str()).collect();
    bases.sort_unstable();
    bases.dedup();
    // Two spellings of one mirror (`https://m/v2` and `https://m`) cannot be written back as
    // two tables of one name.
    if bases.len() == mirrors.len() {
        let written = render(&parsed);
        let back = parse(&written).expect("what was parsed, written back, parses");
        assert_eq!(back, parsed, "written back: {written}");
    }
}

/// What `text` should give, from its TOML value; `None` when the model cannot read it.
fn model(text: &str) -> Option<Parsed> {
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        // The toml crate's dynamic `Value` takes a table holding this key for a datetime; Hoist
        // reads hosts.toml into its own types, where it is an ordinary key.
        Err(_) if text.contains("$__toml_private_datetime") => return None,
        Err(e) => panic!("parse_hosts accepted it, so it is TOML: {e}"),
    };
    let hosts = table.get("host").and_then(|h| h.as_table());
    let server = table.get("server").map(|s| {
        let s = s.as_str().expect("server was accepted as a string");
        Mirror::new(s).expect("an accepted server").base.to_string()
    });
    let mut mirrors = Vec::new();
    for (key, entry) in hosts.into_iter().flatten() {
        let entry = entry.as_table().expect("a host was accepted as a table");
        let has = |capability: &str| match entry.get("capabilities") {
            None => true,
            Some(c) => c
                .as_array()
                .expect("capabilities were accepted as a list")
                .iter()
                .any(|c| c.as_str() == Some(capability)),
        };
        if !has("pull") {
            continue;
        }
        let mut headers = Vec::new();
        if let Some(h) = entry.get("header").and_then(|h| h.as_table()) {
            for (name, value) in h {
                let values = match value {
                    toml::Value::String(v) => vec![v.clone()],
                    toml::Value::Array(vs) => vs
                        .iter()
                        .map(|v| v.as_str().expect("header values were accepted as strings"))
                        .map(str::to_owned)
                        .collect(),
                    other => panic!("header {name} was accepted as {other:?}"),
                };
                for v in values {
                    headers.push((name.to_ascii_lowercase(), v));
                }
            }
        }
        headers.sort();
        let base = Mirror::new(key).expect("an accepted host URL").base;
        mirrors.push(Seen {
            base: base.to_string(),
            headers,
            ca: ca_of(entry),
            skip_verify: skip_verify_of(entry),
            resolve: has("resolve"),
        });
    }
    Some(Parsed {
        server,
        server_ca: ca_of(&table),
        server_skip_verify: skip_verify_of(&table),
        mirrors,
    })
}

fn ca_of(table: &toml::Table) -> Vec<PathBuf> {
    match table.get("ca") {
        None => Vec::new(),
        Some(toml::Value::String(p)) => vec![PathBuf::from(p)],
        Some(toml::Value::Array(ps)) => ps
            .iter()
            .map(|p| PathBuf::from(p.as_str().expect("CA paths were accepted as strings")))
            .collect(),
        Some(other) => panic!("ca was accepted as {other:?}"),
    }
}

fn skip_verify_of(table: &toml::Table) -> bool {
    table
        .get("skip_verify")
        .is_some_and(|v| v.as_bool().expect("skip_verify was accepted as a bool"))
}

/// An absolute http(s) base that requests append `v2/…` to, and that rewrites a registry API
/// URL by keeping its path after the base and its query.
fn base_is_absolute(base: &str) {
    let url = reqwest::Url::parse(base).expect("a base is an absolute URL");
    assert!(matches!(url.scheme(), "http" | "https"), "{base}");
    assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{base}");
    assert!(url.path().ends_with('/'), "{base}");
    assert!(!url.path().ends_with("/v2/"), "{base}");
    assert!(!url.path().ends_with("//"), "{base}");
    let mut mirror = Mirror::new(base).expect("a base is a mirror URL");
    assert_eq!(mirror.base.as_str(), base, "a base is a fixed point");
    mirror.base = url.clone();
    let api = reqwest::Url::parse("https://registry.example/v2/library/alpine/blobs/sha256:ab?n=1")
        .expect("a constant URL");
    let moved = mirror.rewrite(&api).expect("an API URL rewrites");
    assert_eq!(moved.origin(), url.origin(), "{base} → {moved}");
    assert_eq!(
        moved.path(),
        format!("{}v2/library/alpine/blobs/sha256:ab", url.path()),
        "{base} → {moved}"
    );
    assert_eq!(moved.query(), Some("n=1"));
}

/// `parsed` as a hosts.toml, mirrors in order.
fn render(parsed: &Parsed) -> String {
    fn quoted(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    let list = |paths: &[PathBuf]| -> String {
        let quoted: Vec<String> = paths.iter().map(|p| quoted(&p.to_string_lossy())).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut text = String::new();
    if let Some(server) = &parsed.server {
        text += &format!("server = {}\n", quoted(server));
    }
    text += &format!(
        "ca = {}\nskip_verify = {}\n",
        list(&parsed.server_ca),
        parsed.server_skip_verify
    );
    for m in &parsed.mirrors {
        text += &format!(
            "\n[host.{}]\ncapabilities = [{}]\nca = {}\nskip_verify = {}\n",
            quoted(&m.base),
            if m.resolve {
                "\"pull\", \"resolve\""
            } else {
                "\"pull\""
            },
            list(&m.ca),
            m.skip_verify
        );
        let mut names: Vec<&str> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        if !names.is_empty() {
            text += &format!("[host.{}.header]\n", quoted(&m.base));
        }
        for name in names {
            let values: Vec<String> = m
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| quoted(v))
                .collect();
            text += &format!("{} = [{}]\n", quoted(name), values.join(", "));
        }
    }
    text
}
