//! Test support: images built in memory, and an in-process registry that misbehaves on
//! demand (faults a real registry will not produce: lying digests, truncation, ignored Range,
//! resets, rate limits, redirects to blob storage).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response, StatusCode, header};
use axum::routing::get;
use hoist::Digest;
use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::{Client, Credentials};
use hoist_snapshotter::Store;

/// How a layer is compressed in a test image.
#[derive(Clone, Copy, Debug)]
pub enum Comp {
    Gzip,
    Zstd,
    None,
}

/// A tar with the given (path, contents) files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Deterministic, poorly compressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn compress(tar: &[u8], comp: Comp) -> (Vec<u8>, &'static str) {
    match comp {
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(tar, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
    }
}

/// An image held in memory.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    #[allow(dead_code)]
    pub layers: Vec<Digest>,
    pub blobs: HashMap<Digest, Vec<u8>>,
    /// When served through an index: the index (served for the tag) and the platform manifest
    /// (served by its digest).
    pub index: Option<(Vec<u8>, Digest)>,
}

/// Serves `image` through an OCI index that also lists a manifest for another platform.
pub fn indexed(mut image: Image) -> Image {
    let other = Digest::of(b"an arm64 manifest this registry does not have");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{other}","size":10,"platform":{{"os":"linux","architecture":"arm64"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        image.manifest_digest,
        image.manifest.len()
    )
    .into_bytes();
    let digest = Digest::of(&index);
    image.index = Some((index, digest));
    image
}

/// Builds an OCI image from layer tars. `lie_diff_id` makes the config lie about layer 0.
pub fn image(tars: &[Vec<u8>], comp: Comp, lie_diff_id: bool) -> Image {
    let mut blobs = HashMap::new();
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, tar) in tars.iter().enumerate() {
        let (blob, media_type) = compress(tar, comp);
        let digest = Digest::of(&blob);
        let diff_id = if lie_diff_id && i == 0 {
            Digest::of(b"not this layer")
        } else {
            Digest::of(tar)
        };
        diff_ids.push(format!("\"{diff_id}\""));
        descriptors.push(format!(
            r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{}}}"#,
            blob.len()
        ));
        layers.push(digest);
        blobs.insert(digest, blob);
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{"User":"1002"}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_digest = Digest::of(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descriptors.join(",")
    )
    .into_bytes();
    blobs.insert(config_digest, config);
    Image {
        manifest_digest: Digest::of(&manifest),
        manifest,
        config_digest,
        layers,
        blobs,
        index: None,
    }
}

/// What the registry does wrong, to layer blobs only.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer 200 with the whole blob to Range requests.
    pub ignore_range: bool,
    /// Serve these bytes instead of the real blob (same length: a wrong digest).
    pub corrupt: bool,
    /// Append bytes to the blob (more than declared).
    pub extra_bytes: usize,
    /// Cut the body after this many bytes, for the first N blob requests.
    pub reset_after: Option<(usize, usize)>,
    /// Answer 429 with Retry-After: 1 to the first N blob requests.
    pub too_many: usize,
    /// Answer `error_status` (500 when unset) to the first N blob requests.
    pub server_errors: usize,
    /// The status `server_errors` answers with.
    pub error_status: Option<u16>,
    /// Declare a Content-Length this many bytes off the truth on whole-blob answers.
    pub lie_length: Option<i64>,
    /// Answer Range requests with a Content-Range one byte later than the bytes sent.
    pub lie_range: bool,
    /// Send half the body, then stall for this long, for the first N blob requests.
    pub stall: Option<(std::time::Duration, usize)>,
    /// Redirect blob requests to themselves, forever.
    pub redirect_loop: bool,
    /// Serve these bytes for every manifest request instead of the image's manifest.
    pub manifest_body: Option<Vec<u8>>,
    /// Omit Content-Length (stream chunked) on whole-blob answers.
    pub no_length: bool,
    /// Redirect blob requests to `localhost:PORT/storage/…` (another host).
    pub redirect: bool,
    /// Require Basic auth `user:secret` on /v2/.
    pub basic_auth: bool,
    /// Require a Bearer token from `/token` (which wants Basic `user:secret`) on /v2/.
    pub bearer_auth: bool,
    /// Delay each blob answer by a pseudo-random 0–15 ms drawn from this seed, so that
    /// concurrent Range requests complete out of order.
    pub jitter: Option<u64>,
    /// The password and token to use instead of `secret` and `tok-for-test-app`.
    pub secrets: Option<(String, String)>,
}

#[derive(Debug)]
struct Shared {
    image: Image,
    faults: Faults,
    storage_authorization: Mutex<Vec<Option<String>>>,
    token_requests: Mutex<Vec<String>>,
    /// Layer blob requests as they arrive (`bytes=S-E`, or `whole`), and [`STALL_OVER`] when a
    /// stalled body resumes: the count of requests is read from it.
    events: Mutex<Vec<String>>,
    /// Manifest and config requests answered (`manifest REFERENCE`, `config`), in order.
    documents: Mutex<Vec<String>>,
    port: AtomicUsize,
}

/// A running in-process registry serving one image as `test/app:v1`.
#[derive(Debug)]
pub struct FaultyRegistry {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultyRegistry {
    pub async fn start(image: Image, faults: Faults) -> FaultyRegistry {
        let shared = Arc::new(Shared {
            image,
            faults,
            storage_authorization: Mutex::new(Vec::new()),
            token_requests: Mutex::new(Vec::new()),
            events: Mutex::default(),
            documents: Mutex::default(),
            port: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/v2/", get(root))
            .route("/v2/test/app/manifests/{reference}", get(manifest))
            .route("/v2/test/app/blobs/{digest}", get(blob))
            .route("/storage/{digest}", get(storage))
            .route("/token", get(token))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        shared.port.store(addr.port() as usize, Ordering::SeqCst);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FaultyRegistry { addr, shared }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn reference(&self) -> hoist::Reference {
        format!("{}/test/app:v1", self.addr).parse().unwrap()
    }

    /// The image this registry serves.
    pub fn image(&self) -> &Image {
        &self.shared.image
    }

    pub fn blob_requests(&self) -> usize {
        requests(&self.shared.events.lock().unwrap())
    }

    pub fn storage_authorization(&self) -> Vec<Option<String>> {
        self.shared.storage_authorization.lock().unwrap().clone()
    }

    /// Layer blob requests (`bytes=S-E` or `whole`) and `stall over`, in the order they happened.
    pub fn events(&self) -> Vec<String> {
        self.shared.events.lock().unwrap().clone()
    }

    /// The manifest and config requests answered (`manifest REFERENCE`, `config`), in order.
    pub fn document_requests(&self) -> Vec<String> {
        self.shared.documents.lock().unwrap().clone()
    }

    /// The query strings the token endpoint was asked with.
    pub fn token_requests(&self) -> Vec<String> {
        self.shared.token_requests.lock().unwrap().clone()
    }
}

impl Faults {
    fn password(&self) -> &str {
        self.secrets.as_ref().map_or("secret", |(p, _)| p)
    }

    fn token(&self) -> &str {
        self.secrets.as_ref().map_or("tok-for-test-app", |(_, t)| t)
    }

    /// The `Authorization` value of user `user` with the password.
    fn basic(&self) -> String {
        use base64::Engine as _;
        let pair = format!("user:{}", self.password());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response<Body> {
    let query = query.unwrap_or_default();
    shared.token_requests.lock().unwrap().push(query.clone());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if basic != Some(shared.faults.basic().as_str()) {
        return Response::builder().status(401).body(Body::empty()).unwrap();
    }
    if !query.contains("scope=repository%3Atest%2Fapp%3Apull")
        || !query.contains("service=test-registry")
    {
        return Response::builder()
            .status(400)
            .body(Body::from(query))
            .unwrap();
    }
    Response::new(Body::from(
        serde_json::json!({"token": shared.faults.token(), "expires_in": 300}).to_string(),
    ))
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if shared.faults.bearer_auth {
        return given == Some(format!("Bearer {}", shared.faults.token()).as_str());
    }
    !shared.faults.basic_auth || given == Some(shared.faults.basic().as_str())
}

fn unauthorized(shared: &Shared) -> Response<Body> {
    let challenge = if shared.faults.bearer_auth {
        let port = shared.port.load(Ordering::SeqCst);
        format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="test-registry",scope="repository:test/app:pull""#
        )
    } else {
        r#"Basic realm="test""#.to_owned()
    };
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, challenge)
        .body(Body::empty())
        .unwrap()
}

/// `GET /v2/`, behind the same authentication as the repository, as docker-registry has it.
async fn root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response<Body> {
    if !authorized(&shared, &headers) {
        return unauthorized(&shared);
    }
    Response::new(Body::from("{}"))
}

async fn manifest(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response<Body> {
    if !authorized(&shared, &headers) {
        return unauthorized(&shared);
    }
    shared
        .documents
        .lock()
        .unwrap()
        .push(format!("manifest {reference}"));
    if let Some(body) = &shared.faults.manifest_body {
        return Response::builder()
            .header(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json",
            )
            .body(Body::from(body.clone()))
            .unwrap();
    }
    if let Some((index, digest)) = &shared.image.index
        && reference != shared.image.manifest_digest.to_string()
    {
        return Response::builder()
            .header(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.index.v1+json",
            )
            .header("docker-content-digest", digest.to_string())
            .body(Body::from(index.clone()))
            .unwrap();
    }
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .header(
            "docker-content-digest",
            shared.image.manifest_digest.to_string(),
        )
        .body(Body::from(shared.image.manifest.clone()))
        .unwrap()
}

async fn blob(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Response<Body> {
    if !authorized(&shared, &headers) {
        return unauthorized(&shared);
    }
    let digest: Digest = digest.parse().unwrap();
    let Some(bytes) = shared.image.blobs.get(&digest).cloned() else {
        return Response::builder().status(404).body(Body::empty()).unwrap();
    };
    if digest == shared.image.config_digest {
        shared.documents.lock().unwrap().push("config".to_owned());
        return Response::new(Body::from(bytes));
    }
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("whole")
        .to_owned();
    let n = {
        let mut events = shared.events.lock().unwrap();
        events.push(asked);
        requests(&events) - 1
    };
    let f = &shared.faults;
    if n < f.server_errors {
        return Response::builder()
            .status(f.error_status.unwrap_or(500))
            .body(Body::from("boom"))
            .unwrap();
    }
    if n < f.too_many {
        return Response::builder()
            .status(429)
            .header(header::RETRY_AFTER, "1")
            .body(Body::empty())
            .unwrap();
    }
    if f.redirect_loop {
        let port = shared.port.load(Ordering::SeqCst);
        return Response::builder()
            .status(302)
            .header(
                header::LOCATION,
                format!("http://127.0.0.1:{port}/v2/test/app/blobs/{digest}"),
            )
            .body(Body::empty())
            .unwrap();
    }
    if f.redirect {
        let port = shared.port.load(Ordering::SeqCst);
        return Response::builder()
            .status(307)
            .header(
                header::LOCATION,
                format!("http://localhost:{port}/storage/{digest}?X-Signature=s3cr3t"),
            )
            .body(Body::empty())
            .unwrap();
    }
    if let Some(seed) = f.jitter {
        let ms = noise(1, seed ^ (n as u64).wrapping_mul(0x5851_F42D))[0] % 16;
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
    }
    serve_blob(&shared, &headers, bytes, n)
}

async fn storage(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Response<Body> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.storage_authorization.lock().unwrap().push(auth);
    let digest: Digest = digest.parse().unwrap();
    let bytes = shared.image.blobs[&digest].clone();
    serve_blob(&shared, &headers, bytes, usize::MAX)
}

/// What [`Shared::events`] records when a stalled body resumes.
pub const STALL_OVER: &str = "stall over";

/// How many layer blob requests `events` records.
fn requests(events: &[String]) -> usize {
    events.iter().filter(|e| *e != STALL_OVER).count()
}

fn serve_blob(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    mut bytes: Vec<u8>,
    n: usize,
) -> Response<Body> {
    let f = &shared.faults;
    if f.corrupt {
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
    }
    bytes.extend(std::iter::repeat_n(0u8, f.extra_bytes));
    let total = bytes.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| {
            let (s, e) = r.split_once('-')?;
            let s: usize = s.parse().ok()?;
            let e: usize = if e.is_empty() {
                total - 1
            } else {
                e.parse().ok()?
            };
            Some((s, e.min(total - 1)))
        });
    let (status, body, content_range) = match range {
        Some((s, e)) if !f.ignore_range => {
            let shift = usize::from(f.lie_range);
            (
                206,
                bytes[s..=e].to_vec(),
                Some(format!("bytes {}-{}/{total}", s + shift, e + shift)),
            )
        }
        _ => (200, bytes, None),
    };
    let mut builder = Response::builder().status(status);
    if let Some(cr) = content_range {
        builder = builder.header(header::CONTENT_RANGE, cr);
    }
    let len = body.len();
    if let Some((cut, times)) = f.reset_after
        && n < times
        && cut < len
    {
        let head = body[..cut].to_vec();
        // The pause lets the server send the head before the reset, as a dropped connection
        // would: an error returned at once would discard what is still in its write buffer.
        let stream = async_stream::stream! {
            yield Ok(axum::body::Bytes::from(head));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        };
        return builder
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if let Some((pause, times)) = f.stall
        && n < times
    {
        let (head, tail) = body.split_at(len / 2);
        let (head, tail) = (head.to_vec(), tail.to_vec());
        let shared = Arc::clone(shared);
        let stream = async_stream::stream! {
            yield Ok::<_, std::io::Error>(axum::body::Bytes::from(head));
            tokio::time::sleep(pause).await;
            shared.events.lock().unwrap().push(STALL_OVER.to_owned());
            yield Ok(axum::body::Bytes::from(tail));
        };
        return builder
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if let Some(delta) = f.lie_length
        && status == 200
    {
        let stream =
            futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(body))]);
        return builder
            .header(header::CONTENT_LENGTH, (len as i64 + delta).max(0))
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if f.no_length && status == 200 {
        let stream = futures::stream::iter(
            body.chunks(1000)
                .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        return builder.body(Body::from_stream(stream)).unwrap();
    }
    builder
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from(body))
        .unwrap()
}

/// A store, record index and puller in a temporary directory.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub puller: Puller,
}

impl Node {
    pub fn new(insecure: &str, options: Options) -> Node {
        Node::with_registry(insecure, options, hoist::registry::Options::default())
    }

    /// A node whose registry client uses `registry_options` (with `insecure` added).
    pub fn with_registry(
        insecure: &str,
        options: Options,
        mut registry_options: hoist::registry::Options,
    ) -> Node {
        registry_options.insecure.push(insecure.to_owned());
        Node::in_dir(tempfile::tempdir().unwrap(), options, registry_options)
    }

    /// A node whose store lives in `dir`.
    pub fn in_dir(
        dir: tempfile::TempDir,
        options: Options,
        registry_options: hoist::registry::Options,
    ) -> Node {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let images = Images::open(dir.path()).unwrap();
        let client = Arc::new(Client::new(&registry_options).unwrap());
        let puller = Puller::new(client, Arc::clone(&store), images, options);
        Node { dir, store, puller }
    }

    pub async fn pull(
        &self,
        reference: &hoist::Reference,
        credentials: Credentials,
    ) -> hoist::pull::Result<hoist::pull::Pulled> {
        self.puller
            .pull(reference, credentials, Arc::new(Silent))
            .await
    }

    /// Asserts a failed pull of `image` left no image record, nothing staged, and no snapshot
    /// of the layer `err` names or of any layer above it. Layers below it may have been
    /// committed before the failure: they are complete, verified and reusable, as containerd
    /// keeps them.
    pub fn assert_clean(&self, image: &Image, err: &str) {
        let staging: Vec<_> = std::fs::read_dir(self.dir.path().join("staging"))
            .unwrap()
            .collect();
        assert!(staging.is_empty(), "staging left: {staging:?}");
        assert!(self.puller.images().list().unwrap().is_empty());
        let failed = image
            .layers
            .iter()
            .position(|blob| err.contains(&blob.to_string()))
            .unwrap_or_else(|| panic!("the error names a layer: {err}"));
        let config = hoist::manifest::parse_config(&image.blobs[&image.config_digest]).unwrap();
        let chains = hoist::pull::plan::chain_ids(&config.rootfs.diff_ids);
        for info in self.store.list().unwrap() {
            assert!(
                matches!(info.kind, hoist_snapshotter::Kind::Committed),
                "{info:?}"
            );
            let at = chains.iter().position(|c| c.to_string() == info.name);
            assert!(
                at.is_some_and(|i| i < failed),
                "snapshot {} is not a layer below the failed one",
                info.name
            );
        }
    }

    /// Asserts the store holds nothing: no snapshot, nothing staged, no image record.
    pub fn assert_empty(&self) {
        assert!(
            self.store.list().unwrap().is_empty(),
            "snapshots left: {:?}",
            self.store.list().unwrap()
        );
        let staging: Vec<_> = std::fs::read_dir(self.dir.path().join("staging"))
            .unwrap()
            .collect();
        assert!(staging.is_empty(), "staging left: {staging:?}");
        assert!(self.puller.images().list().unwrap().is_empty());
    }
}

/// Fast options for fault tests: small chunks, quick retries.
pub fn options(chunk_size: u64) -> Options {
    let mut o = Options::default();
    o.fetch.chunk_size = chunk_size;
    o.fetch.chunks_in_flight = 4;
    o.fetch.backoff = std::time::Duration::from_millis(10);
    o.fetch.retries = 3;
    o
}

/// A gRPC channel to the unix socket `socket`, retried while the server starts; fails the test
/// after `within`.
pub async fn connect_unix(
    socket: &std::path::Path,
    within: std::time::Duration,
) -> tonic::transport::Channel {
    let started = std::time::Instant::now();
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("unix://{}", socket.display())).unwrap();
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(e) => {
                assert!(
                    started.elapsed() < within,
                    "connecting to {}: {e}",
                    socket.display()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// The value of the environment variable `name` that `scripts/with-services.sh` sets, or `None`:
/// then `test` skips, or fails with `HOIST_TEST_REQUIRE_SERVICES=1`.
#[allow(clippy::print_stderr)] // a skipped test says so
pub fn required_env(name: &str, test: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("HOIST_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{test}: {name} is not set (run through scripts/with-services.sh)"
            );
            eprintln!(
                "skipping {test}: {name} is not set (HOIST_TEST_REQUIRE_SERVICES=1 makes this a failure)"
            );
            None
        }
    }
}

/// A child process (`hoist serve`) killed and reaped when the test ends, passed or not.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A store that has pulled a two-layer gzip image from a test registry: the node, the image's
/// record and its reference.
pub async fn pulled_two_layers() -> (Node, hoist::images::Record, String) {
    let img = image(
        &[tar_of(&[("a", b"a")]), tar_of(&[("b", b"b")])],
        Comp::Gzip,
        false,
    );
    let registry = FaultyRegistry::start(img, Faults::default()).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    node.pull(&registry.reference(), Credentials::Anonymous)
        .await
        .unwrap();
    let record = node.puller.images().list().unwrap().remove(0);
    (node, record, registry.reference().to_string())
}
