//! A shaping and fault-injecting HTTP/1.1 proxy on 127.0.0.1, in front of a registry, that makes
//! the registry behave like a remote one: S3-backed registries cap each connection's rate (which
//! is why parallel Range requests pay), add latency before the first byte of every request, and
//! reset, stall, rate-limit or ignore `Range` now and then. This machine has no `tc netem`.
//!
//! ```text
//! client ──► Proxy (127.0.0.1:P) ──one upstream connection per request──► registry
//!            first-byte latency, faults, then the body paced by
//!            the connection's bucket and the link's bucket
//! ```
//!
//! Clients talk plain HTTP to it as to the registry (`--insecure-registry 127.0.0.1:P`). The
//! proxy runs on a thread of its own with its own runtime, so tests (async or not) and
//! `hoist-bench` use it alike; dropping the [`Proxy`] stops it and ends every connection.

mod bucket;
mod conn;
mod fault;
mod http;
mod splice;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use bucket::Bucket;
pub use fault::{Fault, Rule};

use crate::Kind;

/// Failures starting a proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be made.
    #[error("proxy: listening on 127.0.0.1: {source}")]
    Listen {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The proxy's runtime or thread could not be started.
    #[error("proxy: starting its runtime: {source}")]
    Runtime {
        /// What failed.
        source: std::io::Error,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        Kind::Unavailable
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// How the link to the registry behaves. The default is a plain pass-through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shaping {
    /// Bytes per second each client connection receives at most; `None` for no cap.
    pub per_connection: Option<u64>,
    /// Bytes per second all connections together receive at most; `None` for no cap.
    pub link: Option<u64>,
    /// Delay before each request is forwarded (time to first byte); zero by default.
    pub first_byte: Duration,
    /// Client connections served at once; more wait to be accepted. `None` for no limit.
    pub max_connections: Option<usize>,
}

impl Shaping {
    /// Whether this shaping does anything at all.
    pub fn is_passthrough(&self) -> bool {
        *self == Shaping::default()
    }
}

/// Counters of what the proxy did, readable while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Most client connections open at once.
    pub max_active: AtomicU64,
    /// Requests read from clients.
    pub requests: AtomicU64,
    /// Requests that carried a `Range` header.
    pub range_requests: AtomicU64,
    /// Requests a fault rule hit.
    pub faults: AtomicU64,
    /// Response body bytes sent to clients.
    pub bytes: AtomicU64,
    active: AtomicU64,
    log: Mutex<Vec<Logged>>,
}

/// Requests kept in [`Stats::logged`].
pub const MAX_LOGGED: usize = 100_000;

/// One request the proxy answered: what was asked, and the status it answered with (an
/// injected fault's, or the registry's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target (`/v2/REPO/manifests/REF`).
    pub target: String,
    /// The response status.
    pub status: u16,
}

impl Logged {
    /// A `GET` or `HEAD` of a manifest.
    pub fn is_manifest(&self) -> bool {
        self.target.contains("/manifests/")
    }

    /// A request for a blob (config or layer).
    pub fn is_blob(&self) -> bool {
        self.target.contains("/blobs/")
    }
}

impl Stats {
    fn opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_active.fetch_max(now, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Every request answered so far (the first [`MAX_LOGGED`]), in the order the answers
    /// began.
    pub fn logged(&self) -> Vec<Logged> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_log(&self) {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn answered(&self, method: &str, target: &str, status: u16) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Benchmarks send many thousands of Range requests through a proxy: the log keeps
        // the first ones, which is what tests read.
        if log.len() >= MAX_LOGGED {
            return;
        }
        log.push(Logged {
            method: method.to_owned(),
            target: target.to_owned(),
            status,
        });
    }
}

/// What connection tasks share.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    shaping: Shaping,
    link: Option<Mutex<Bucket>>,
    rules: Mutex<fault::Rules>,
    stats: Stats,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, fault::Rules> {
        // A panicking connection task cannot leave the rules half-updated: take() is one step.
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running proxy. Dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`.
    pub fn start(upstream: SocketAddr, shaping: Shaping) -> Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| Error::Listen { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Listen { source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hoist-proxy")
            .enable_all()
            .build()
            .map_err(|source| Error::Runtime { source })?;
        let shared = Arc::new(Shared {
            upstream,
            link: shaping.link.map(|rate| Mutex::new(Bucket::new(rate))),
            shaping,
            rules: Mutex::default(),
            stats: Stats::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("hoist-proxy".to_owned())
            .spawn(move || {
                runtime.block_on(accept(listener, serving, stopped));
                // Stalled and shaped connections are cut off here.
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|source| Error::Runtime { source })?;
        Ok(Proxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the registry host clients use.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a fault rule after the existing ones (the first matching rule fires).
    pub fn inject(&self, rule: Rule) {
        self.shared.faults().push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The shaping it applies.
    pub fn shaping(&self) -> &Shaping {
        &self.shared.shaping
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let limit = shared
        .shaping
        .max_connections
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1))));
    loop {
        let permit = match &limit {
            Some(limit) => tokio::select! {
                permit = Arc::clone(limit).acquire_owned() => permit.ok(),
                _ = &mut stopped => return,
            },
            None => None,
        };
        let client = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((client, _)) = client else { continue };
        let _ = client.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            shared.stats.opened();
            conn::serve(client, Arc::clone(&shared)).await;
            shared.stats.closed();
            drop(permit);
        });
    }
}
