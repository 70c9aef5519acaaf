//! Hoist's configuration file (TOML). Every field has a default; command-line flags override
//! the file. A missing file at the default path means defaults; a missing file named
//! explicitly is an error. `config.example.toml` at the repository root documents every key
//! and is parsed by a test so that it cannot drift.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::connectors;
use crate::platform::Platform;
use crate::pull;
use crate::reference::Reference;
use crate::registry;

/// Where `hoist` looks for its config when none is named.
pub const DEFAULT_PATH: &str = "/etc/hoist/config.toml";

/// Config failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The connector keys are inconsistent.
    #[error("config: {0}")]
    Connectors(#[from] connectors::config::Error),
    /// A value is out of range.
    #[error("config: {key} {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl Error {
    /// The kind of failure, for the API edges.
    pub fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::InvalidArgument
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding snapshots, image records and blobs. Default: `/var/lib/hoist`.
    pub root: PathBuf,
    /// Registries (`host` or `host:port`) reached over plain HTTP. Default: none.
    pub insecure_registries: Vec<String>,
    /// Extra PEM CA bundles trusted for registry TLS, besides the system roots. Default: none.
    pub ca_files: Vec<PathBuf>,
    /// Pull tuning.
    pub pull: PullConfig,
    /// `hoist serve`.
    pub serve: ServeConfig,
    /// `[[connector]]` tables: named registry credentials (see README "Connectors").
    /// Default: none.
    #[serde(rename = "connector")]
    pub connectors: Vec<connectors::ConnectorConfig>,
    /// `[[route]]` tables: images whose registry/repository match use a connector; the first
    /// match wins. Default: none.
    #[serde(rename = "route")]
    pub routes: Vec<connectors::RouteConfig>,
    /// The connector used when no other rule applies, e.g. `account.harnessImage`.
    /// Default: none (anonymous).
    pub default_connector: Option<String>,
    /// `[[tenant]]` tables: the org and project of the pods in a Kubernetes namespace (exact,
    /// or a prefix ending in `*`); the most specific match wins (exact, then the longest
    /// prefix). A namespace with no match gets account scope only. Default: none.
    #[serde(rename = "tenant")]
    pub tenants: Vec<connectors::TenantConfig>,
    /// Whether a pod's own `hoist.dev/org` and `hoist.dev/project` labels or annotations choose
    /// its tenant instead of its namespace. Only safe under an admission policy that stops pods
    /// from claiming another tenant (README "Connectors"). Default: false.
    pub trust_pod_labels: bool,
    /// Mirrors or pull-through caches per registry (`HOST[:PORT]`, `docker.io`, or `*` for
    /// all), tried in order before it, keeping the repository path. Default: none.
    pub mirrors: std::collections::BTreeMap<String, Vec<String>>,
    /// A containerd `certs.d`-style directory (`HOST/hosts.toml`) of further mirrors.
    /// Default: none.
    pub hosts_dir: Option<PathBuf>,
}

/// `[serve]`: the daemon's sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Unix socket for containerd's snapshots API (the `hoist` proxy snapshotter), created
    /// with mode 0660. Default: `/run/hoist/snapshots.sock`.
    pub snapshots_socket: PathBuf,
    /// Unix socket for the CRI `runtime.v1.ImageService` (kubelet's
    /// `--image-service-endpoint`), created with mode 0660. Default: `/run/hoist/cri.sock`.
    pub cri_socket: PathBuf,
    /// containerd's gRPC socket, where pulled images are registered. Default:
    /// `/run/containerd/containerd.sock`.
    pub containerd_socket: PathBuf,
    /// The containerd namespace images are registered in; kubelet's is `k8s.io`.
    pub namespace: String,
    /// Whether pulled images are registered in containerd (content, image records, snapshot
    /// adoption). Without it Hoist serves only its own store and removes unused layers itself.
    /// Default: true.
    pub register: bool,
    /// The name containerd knows Hoist's snapshotter by (`[proxy_plugins.NAME]`).
    /// Default: `hoist`.
    pub snapshotter: String,
    /// Also write each pulled layer's compressed blob into containerd's content store, as
    /// containerd's own pull does. Costs the compressed size again on disk and the time to
    /// write it; gives `ctr images export`/`push` and unpacking into other snapshotters.
    /// Default: false.
    pub keep_layer_blobs: bool,
    /// Images that kubelet's image garbage collection must never remove: `ListImages` and
    /// `ImageStatus` answer `pinned: true` for them, and their records in containerd are
    /// labelled `io.cri-containerd.pinned=pinned`, as containerd labels the images of its own
    /// `pinned_images` (its sandbox image). References, normalised as Docker does, by tag or
    /// digest. Default: none.
    pub pinned_images: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            snapshots_socket: PathBuf::from("/run/hoist/snapshots.sock"),
            cri_socket: PathBuf::from("/run/hoist/cri.sock"),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            namespace: "k8s.io".to_owned(),
            register: true,
            snapshotter: "hoist".to_owned(),
            keep_layer_blobs: false,
            pinned_images: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/hoist"),
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            pull: PullConfig::default(),
            serve: ServeConfig::default(),
            connectors: Vec::new(),
            routes: Vec::new(),
            default_connector: None,
            tenants: Vec::new(),
            trust_pod_labels: false,
            mirrors: Default::default(),
            hosts_dir: None,
        }
    }
}

/// `[pull]`: how images are fetched and unpacked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullConfig {
    /// Platform chosen from multi-platform images, `os/arch[/variant]`. Default: this machine's.
    pub platform: Option<String>,
    /// Bytes per HTTP Range request. Default: 4194304 (4 MiB).
    pub chunk_size: u64,
    /// Chunks of one layer that exist at once, requested or arrived but not yet decoded;
    /// times `chunk_size`, this bounds a layer's buffer memory. Default: 8.
    pub chunks_in_flight: usize,
    /// Range requests in flight across one image. Default: 16.
    pub chunks_per_image: usize,
    /// Layers fetched and unpacked at once for one image. Default: 3.
    pub layers_in_parallel: usize,
    /// Layers fetched and unpacked at once across every pull on the node. Default: 6.
    pub layers_per_node: usize,
    /// Retries of one failed request, with exponential backoff. Default: 5.
    pub retries: u32,
    /// First retry delay in milliseconds, doubled per attempt. Default: 200.
    pub backoff_ms: u64,
    /// Seconds without any byte arriving before a request fails. Default: 30.
    pub progress_timeout_secs: u64,
    /// Largest uncompressed layer accepted, in bytes (decompression bombs). Default: none.
    pub max_layer_size: Option<u64>,
    /// Largest ratio of a layer's uncompressed size to its compressed size (decompression
    /// bombs); layers up to 16 MiB uncompressed are always allowed. Default: none.
    pub max_layer_ratio: Option<u64>,
    /// Whether layers may create character and block devices. Default: true (as containerd).
    pub allow_devices: bool,
    /// Whether layers write their regular files through io_uring (batched content writes and
    /// closes); without it, or where io_uring is blocked (seccomp), `std::fs`. Default: false.
    pub io_uring: bool,
}

impl Default for PullConfig {
    fn default() -> Self {
        let fetch = pull::fetch::Options::default();
        let pull = pull::Options::default();
        PullConfig {
            platform: None,
            chunk_size: fetch.chunk_size,
            chunks_in_flight: fetch.chunks_in_flight,
            chunks_per_image: pull.chunks_per_image,
            layers_in_parallel: pull.layers_in_parallel,
            layers_per_node: pull.layers_per_node,
            retries: fetch.retries,
            backoff_ms: fetch.backoff.as_millis() as u64,
            progress_timeout_secs: registry::Options::default().progress_timeout.as_secs(),
            max_layer_size: None,
            max_layer_ratio: None,
            allow_devices: true,
            io_uring: pull::unpack::Options::default().io_uring,
        }
    }
}

impl Config {
    /// Loads `path`, or [`DEFAULT_PATH`] when `None` (defaults if that file is missing).
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (path, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(source) => return Err(Error::Read { path, source }),
        };
        Config::parse(&text).map_err(|e| match e {
            Error::Parse { source, .. } => Error::Parse { path, source },
            other => other,
        })
    }

    /// Parses TOML text and checks the values.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|source| Error::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        config.pull_options()?;
        config.pinned_images()?;
        config.connector_settings().check()?;
        for url in config.mirrors.values().flatten() {
            registry::mirror::Mirror::new(url).map_err(|e| Error::Invalid {
                key: "mirrors",
                problem: e.to_string(),
            })?;
        }
        Ok(config)
    }

    /// The connector keys, for [`connectors::Resolver`] and [`connectors::Live`].
    pub fn connector_settings(&self) -> connectors::Settings {
        connectors::Settings {
            connectors: self.connectors.clone(),
            routes: self.routes.clone(),
            default_connector: self.default_connector.clone(),
            tenants: self.tenants.clone(),
            trust_pod_labels: self.trust_pod_labels,
        }
    }

    /// The registry transport settings.
    pub fn registry_options(&self) -> registry::Options {
        registry::Options {
            insecure: self.insecure_registries.clone(),
            ca_files: self.ca_files.clone(),
            progress_timeout: Duration::from_secs(self.pull.progress_timeout_secs),
            mirrors: self
                .mirrors
                .iter()
                .map(|(registry, urls)| {
                    let list = urls
                        .iter()
                        .filter_map(|u| registry::mirror::Mirror::new(u).ok())
                        .collect();
                    (registry.clone(), list)
                })
                .collect(),
            hosts_dir: self.hosts_dir.clone(),
            ..registry::Options::default()
        }
    }

    /// `[serve] pinned_images`, parsed.
    pub fn pinned_images(&self) -> Result<Vec<Reference>> {
        self.serve
            .pinned_images
            .iter()
            .map(|image| {
                image
                    .parse()
                    .map_err(|e: crate::reference::Error| Error::Invalid {
                        key: "serve.pinned_images",
                        problem: format!("{image:?}: {e}"),
                    })
            })
            .collect()
    }

    /// The pull settings, checked.
    pub fn pull_options(&self) -> Result<pull::Options> {
        let p = &self.pull;
        let positive = |key: &'static str, v: u64| {
            if v == 0 {
                Err(Error::Invalid {
                    key,
                    problem: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("pull.chunk_size", p.chunk_size)?;
        positive("pull.chunks_in_flight", p.chunks_in_flight as u64)?;
        positive("pull.chunks_per_image", p.chunks_per_image as u64)?;
        positive("pull.layers_in_parallel", p.layers_in_parallel as u64)?;
        positive("pull.layers_per_node", p.layers_per_node as u64)?;
        positive("pull.progress_timeout_secs", p.progress_timeout_secs)?;
        let platform = match &p.platform {
            Some(s) => s.parse::<Platform>().map_err(|e| Error::Invalid {
                key: "pull.platform",
                problem: e.to_string(),
            })?,
            None => Platform::host(),
        };
        Ok(pull::Options {
            platform,
            fetch: pull::fetch::Options {
                chunk_size: p.chunk_size,
                chunks_in_flight: p.chunks_in_flight,
                retries: p.retries,
                backoff: Duration::from_millis(p.backoff_ms),
                ..pull::fetch::Options::default()
            },
            layers_in_parallel: p.layers_in_parallel,
            layers_per_node: p.layers_per_node,
            chunks_per_image: p.chunks_per_image,
            max_layer_size: p.max_layer_size,
            max_layer_ratio: p.max_layer_ratio,
            // Set by `hoist serve`, the only command that registers and so has a use for them.
            keep_layer_blobs: false,
            unpack: pull::unpack::Options {
                allow_devices: p.allow_devices,
                io_uring: p.io_uring,
                ..pull::unpack::Options::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../../config.example.toml");
        let config = Config::parse(text).expect("config.example.toml parses");
        let defaults = PullConfig::default();
        assert_eq!(config.pull.chunk_size, defaults.chunk_size);
        assert_eq!(config.pull.chunks_in_flight, defaults.chunks_in_flight);
        assert_eq!(config.pull.layers_in_parallel, defaults.layers_in_parallel);
        assert_eq!(config.root, Config::default().root);
        assert_eq!(config.pull.layers_per_node, defaults.layers_per_node);
        assert_eq!(config.pull.io_uring, defaults.io_uring);
        // As `hoist-bench run --set io_uring=true` writes it.
        let swept = Config::parse("[pull]\nio_uring = true\n").expect("a bool key");
        assert!(swept.pull_options().expect("valid").unpack.io_uring);
        let serve = ServeConfig::default();
        assert_eq!(config.serve.snapshots_socket, serve.snapshots_socket);
        assert_eq!(config.serve.cri_socket, serve.cri_socket);
        assert_eq!(config.serve.containerd_socket, serve.containerd_socket);
        assert_eq!(config.serve.namespace, serve.namespace);
        assert_eq!(config.serve.register, serve.register);
        assert_eq!(config.serve.snapshotter, serve.snapshotter);
        assert_eq!(config.serve.keep_layer_blobs, serve.keep_layer_blobs);
        assert_eq!(config.serve.pinned_images, serve.pinned_images);
    }

    #[test]
    fn example_connectors_parse() {
        let text = include_str!("../../config.example.toml");
        let (_, connectors) = text
            .split_once("# --- connectors ---")
            .expect("config.example.toml has a connectors section");
        let uncommented: String = connectors
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            // Keys and table headers; prose lines are neither.
            .filter(|l| {
                l.starts_with("[[")
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = Config::parse(&uncommented);
        if !crate::connectors::aws::SUPPORTED {
            // The examples include an ECR connector, which this build refuses by name.
            let error = parsed.expect_err("an Aws connector needs the aws feature");
            assert!(
                error.to_string().contains("built without the aws feature"),
                "{error}"
            );
            return;
        }
        let config = parsed.expect("the connector examples parse");
        assert_eq!(config.connectors.len(), 4);
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.tenants.len(), 2);
        assert!(!config.trust_pod_labels);
        assert_eq!(
            config.default_connector.as_deref(),
            Some("account.harnessImage")
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(matches!(
            Config::parse("rooot = '/x'"),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[pull]\nchunk_size = 0"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            Config::parse("[pull]\nplatform = 'linux'"),
            Err(Error::Invalid { .. })
        ));
        assert!(Config::load(Some(Path::new("/nonexistent/hoist.toml"))).is_err());
        let error = Config::parse("[serve]\npinned_images = ['pause:3.10', 'NOT A REF']")
            .expect_err("a bad pinned image");
        assert!(error.to_string().contains("serve.pinned_images"), "{error}");
        let pinned = Config::parse("[serve]\npinned_images = ['registry.k8s.io/pause:3.10']")
            .expect("a pinned image parses");
        assert_eq!(
            pinned.pinned_images().expect("valid")[0].to_string(),
            "registry.k8s.io/pause:3.10"
        );
        assert!(Config::parse("[mirrors]\n\"docker.io\" = [\"ftp://x\"]").is_err());
        let mirrored = Config::parse("[mirrors]\n\"docker.io\" = [\"http://127.0.0.1:5000/v2\"]")
            .expect("a mirror list parses");
        let options = mirrored.registry_options();
        assert_eq!(
            options.mirrors["docker.io"][0].base.as_str(),
            "http://127.0.0.1:5000/"
        );
    }
}
