//! The shaping and fault proxy in front of the real docker-registry: each cap, the latency, the
//! connection limit and each fault does what it says, and Hoist's engine pulls through all the
//! faults at once. Rates are checked only from below, with generous margins (a cap can make a
//! transfer slower than its bound on a busy machine, never faster).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::{Client, Credentials};
use hoist_harness::image::{Compression, Content, Digest, Entry, Image, Layer, layout};
use hoist_harness::proxy::{Fault, Proxy, Rule, Shaping};
use hoist_snapshotter::Store;

use crate::{fixtures, services};

/// Size of the test blob: 4 MiB of incompressible content, stored uncompressed.
const BLOB: u64 = 4 << 20;

/// One pushed image with a single 4 MiB layer: the registry host, repository path and the blob.
struct Pushed {
    reference: String,
    repository: String,
    blob: layout::WrittenLayer,
}

fn pushed(name: &str) -> Pushed {
    let content = Content::Generated {
        seed: 7,
        size: BLOB - 1024,
    };
    let image = Image::new(vec![Layer::new(
        vec![Entry::file("blob.bin", content)],
        Compression::None,
    )]);
    let (written, reference) = fixtures::push(&image, name);
    Pushed {
        reference,
        repository: format!("hoist-it/{name}"),
        blob: written.layers[0].clone(),
    }
}

fn proxy(shaping: Shaping) -> Proxy {
    let upstream = services::registry().parse().unwrap();
    Proxy::start(upstream, shaping).unwrap()
}

/// A response as a test sees it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// How reading the body ended early, if it did (reset, timeout).
    cut: Option<std::io::ErrorKind>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client on one connection, so the tests see exactly what the proxy sends.
struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(proxy: &Proxy) -> Conn {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn(BufReader::new(stream))
    }

    fn request(&mut self, method: &str, path: &str, extra: &[(&str, &str)]) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: registry\r\n");
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.0.get_mut().write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.0.read_line(&mut line).unwrap();
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            let (n, v) = text.split_once(':').unwrap();
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            cut: None,
        };
        let length: u64 = match response.header("content-length") {
            Some(n) if method != "HEAD" => n.parse().unwrap(),
            _ => 0,
        };
        let mut take = (&mut self.0).take(length);
        if let Err(e) = take.read_to_end(&mut response.body) {
            response.cut = Some(e.kind());
        } else if (response.body.len() as u64) < length {
            response.cut = Some(std::io::ErrorKind::UnexpectedEof);
        }
        response
    }

    fn get_blob(&mut self, pushed: &Pushed, extra: &[(&str, &str)]) -> Response {
        let path = format!("/v2/{}/blobs/{}", pushed.repository, pushed.blob.digest);
        self.request("GET", &path, extra)
    }
}

fn whole_blob(pushed: &Pushed, response: &Response) {
    assert_eq!(response.status, 200, "{:?}", response.headers);
    assert_eq!(response.cut, None);
    assert_eq!(response.body.len() as u64, pushed.blob.size);
    assert_eq!(Digest::of(&response.body), pushed.blob.digest);
}

#[test]
fn proxy_passes_blobs_through_unchanged_and_keeps_the_connection() {
    let pushed = pushed("proxy-passthrough");
    let proxy = proxy(Shaping::default());
    let mut conn = Conn::open(&proxy);
    whole_blob(&pushed, &conn.get_blob(&pushed, &[]));
    let range = conn.get_blob(&pushed, &[("Range", "bytes=100-199")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body.len(), 100);
    whole_blob(&pushed, &conn.get_blob(&pushed, &[]));
    assert_eq!(proxy.stats().connections.load(Relaxed), 1);
}

#[test]
fn proxy_caps_each_connection() {
    let pushed = pushed("proxy-per-connection");
    // 2 MB/s over 4 MiB: at least ~2 s; 1.5 s leaves room for the burst.
    let proxy = proxy(Shaping {
        per_connection: Some(2_000_000),
        ..Shaping::default()
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let addr = proxy.addr();
            let path = format!("/v2/{}/blobs/{}", pushed.repository, pushed.blob.digest);
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                let mut conn = Conn(BufReader::new(stream));
                let started = Instant::now();
                let response = conn.request("GET", &path, &[]);
                (response, started.elapsed())
            })
        })
        .collect();
    for handle in handles {
        let (response, elapsed) = handle.join().unwrap();
        whole_blob(&pushed, &response);
        assert!(
            elapsed >= Duration::from_millis(1500),
            "one connection took {elapsed:?}"
        );
    }
    // Both ran side by side; the cap is per connection, so together they took no longer than
    // about one each (generous: the bound checked is 4x).
    assert!(
        started.elapsed() < Duration::from_secs(16),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn proxy_caps_the_whole_link() {
    let pushed = pushed("proxy-link");
    // 4 MB/s shared: two 4 MiB blobs at once need at least ~2 s.
    let proxy = proxy(Shaping {
        link: Some(4_000_000),
        ..Shaping::default()
    });
    let started = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let addr = proxy.addr();
            let path = format!("/v2/{}/blobs/{}", pushed.repository, pushed.blob.digest);
            std::thread::spawn(move || {
                let mut conn = Conn(BufReader::new(TcpStream::connect(addr).unwrap()));
                conn.request("GET", &path, &[])
            })
        })
        .collect();
    for handle in handles {
        whole_blob(&pushed, &handle.join().unwrap());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "8 MiB at 4 MB/s took {elapsed:?}"
    );
}

#[test]
fn proxy_delays_the_first_byte_of_every_request() {
    let proxy = proxy(Shaping {
        first_byte: Duration::from_millis(300),
        ..Shaping::default()
    });
    let mut conn = Conn::open(&proxy);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(conn.request("GET", "/v2/", &[]).status, 200);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "3 requests took {elapsed:?}"
    );
}

#[test]
fn proxy_limits_connections_served_at_once() {
    let pushed = pushed("proxy-connections");
    let proxy = proxy(Shaping {
        per_connection: Some(8_000_000),
        max_connections: Some(1),
        ..Shaping::default()
    });
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let addr = proxy.addr();
            let path = format!("/v2/{}/blobs/{}", pushed.repository, pushed.blob.digest);
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                let mut conn = Conn(BufReader::new(stream));
                // One request per connection, then close, so the next client gets its turn.
                conn.request("GET", &path, &[("Connection", "close")])
            })
        })
        .collect();
    for handle in handles {
        whole_blob(&pushed, &handle.join().unwrap());
    }
    let stats = proxy.stats();
    assert_eq!(stats.connections.load(Relaxed), 3);
    assert_eq!(stats.max_active.load(Relaxed), 1);
}

#[test]
fn proxy_injects_each_fault_on_demand() {
    let pushed = pushed("proxy-faults");
    let proxy = proxy(Shaping::default());

    proxy.inject(Rule::blobs(Fault::Status(503), Some(1)));
    let mut conn = Conn::open(&proxy);
    assert_eq!(conn.get_blob(&pushed, &[]).status, 503);
    // Spent: the next request on the same connection goes through.
    let whole = conn.get_blob(&pushed, &[]);
    whole_blob(&pushed, &whole);

    proxy.inject(Rule::blobs(
        Fault::TooManyRequests {
            retry_after: Duration::from_secs(2),
        },
        Some(1),
    ));
    let limited = conn.get_blob(&pushed, &[]);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));

    proxy.inject(Rule::blobs(Fault::IgnoreRange, Some(1)));
    let ignored = conn.get_blob(&pushed, &[("Range", "bytes=0-99")]);
    whole_blob(&pushed, &ignored);
    assert_eq!(ignored.header("content-range"), None);

    proxy.inject(Rule::blobs(
        Fault::Reset {
            after_bytes: 100_000,
        },
        Some(1),
    ));
    let reset = conn.get_blob(&pushed, &[]);
    assert_eq!(reset.status, 200);
    assert!(reset.cut.is_some(), "the body is cut short");
    assert!(
        reset.body.len() <= 100_000,
        "at most the bytes before the reset arrive: {}",
        reset.body.len()
    );
    assert!(whole.body.starts_with(&reset.body));

    proxy.inject(Rule::blobs(
        Fault::Stall {
            after_bytes: 50_000,
            duration: Duration::from_secs(60),
        },
        Some(1),
    ));
    let mut stalled = Conn::open(&proxy);
    stalled
        .0
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let response = stalled.get_blob(&pushed, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body.len(),
        50_000,
        "exactly the bytes before the stall"
    );
    assert!(
        matches!(
            response.cut,
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "the stalled read times out: {:?}",
        response.cut
    );
    let stats = proxy.stats();
    assert_eq!(stats.faults.load(Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_pulls_through_every_fault_and_a_capped_link() {
    let pushed = pushed("proxy-hoist");
    let proxy = proxy(Shaping {
        per_connection: Some(20_000_000),
        first_byte: Duration::from_millis(20),
        ..Shaping::default()
    });
    for fault in [
        Fault::Status(503),
        Fault::TooManyRequests {
            retry_after: Duration::from_secs(1),
        },
        Fault::Reset {
            after_bytes: 300_000,
        },
        Fault::IgnoreRange,
    ] {
        // The layer only: the config blob is fetched once, without retries.
        proxy.inject(Rule {
            path_contains: pushed.blob.digest.to_string(),
            ..Rule::blobs(fault, Some(1))
        });
    }
    let reference = pushed
        .reference
        .replacen(&services::registry(), &proxy.host(), 1);
    let root = tempfile::tempdir().unwrap();
    let client = Client::new(&hoist::registry::Options {
        insecure: vec![proxy.host()],
        ..Default::default()
    })
    .unwrap();
    let mut options = Options::default();
    options.fetch.chunk_size = 1 << 20;
    let puller = Puller::new(
        Arc::new(client),
        Arc::new(Store::open(root.path()).unwrap()),
        Images::open(root.path()).unwrap(),
        options,
    );
    let pulled = puller
        .pull(
            &reference.parse().unwrap(),
            Credentials::Anonymous,
            Arc::new(Silent),
        )
        .await
        .unwrap();
    assert_eq!(pulled.fetched_bytes, pushed.blob.size);
    let stats = proxy.stats();
    assert_eq!(stats.faults.load(Relaxed), 4);
    assert!(stats.range_requests.load(Relaxed) >= 2);
}
