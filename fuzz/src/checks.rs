//! The invariants each fuzz target checks, one function per parser of untrusted input.
//!
//! The fuzz targets call these, and the stable test suite includes this same file
//! (`shim/tests/it/corpus.rs`) to replay every corpus file through them, so a target and its
//! replay cannot drift apart. Each function panics when an invariant breaks; anything else
//! (including a clean parse error) is a pass.

use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};

use hoist::Digest;
use hoist::manifest::{self, Compression, Document};
use hoist::pull::{decode, unpack};
use hoist::registry::{Challenge, auth::ChallengeError};

/// Image references: whatever parses displays as a string that parses to the same value.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = text.parse::<hoist::Reference>() {
        let shown = reference.to_string();
        let again: hoist::Reference = shown.parse().expect("a displayed reference parses");
        assert_eq!(again, reference);
        assert_eq!(again.to_string(), shown);
    }
}

/// `Content-Range`: whatever parses is a well-formed range that re-parses to itself.
pub fn content_range(data: &[u8]) {
    use hoist::pull::fetch::parse_content_range;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((start, end, total)) = parse_content_range(text) {
        assert!(start <= end);
        if let Some(total) = total {
            assert!(end < total);
        }
        let shown = match total {
            Some(t) => format!("bytes {start}-{end}/{t}"),
            None => format!("bytes {start}-{end}/*"),
        };
        assert_eq!(parse_content_range(&shown), Some((start, end, total)));
    }
}

/// Manifest-endpoint documents: parsing is deterministic, every descriptor round-trips
/// through JSON, and platform selection picks an entry of the index that matches.
pub fn manifest(data: &[u8]) {
    for content_type in [
        None,
        Some(manifest::OCI_INDEX),
        Some(manifest::DOCKER_MANIFEST),
    ] {
        let first = manifest::parse(data, content_type);
        let again = manifest::parse(data, content_type);
        assert_eq!(
            format!("{first:?}"),
            format!("{again:?}"),
            "parsing is deterministic"
        );
        match first {
            Ok(Document::Index(index)) => {
                index.manifests.iter().for_each(descriptor_round_trips);
                for platform in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
                    let platform = platform.parse().expect("a well-formed platform");
                    match index.select(&platform) {
                        Ok(chosen) => {
                            assert!(index.manifests.contains(chosen));
                            let offered = chosen.platform.as_ref().expect("a chosen platform");
                            assert!(platform.matches(&offered.platform()));
                        }
                        Err(e) => assert!(matches!(e, manifest::Error::NoPlatform { .. })),
                    }
                }
            }
            Ok(Document::Manifest(m)) => {
                descriptor_round_trips(&m.config);
                for layer in &m.layers {
                    descriptor_round_trips(layer);
                    match manifest::layer_compression(&layer.media_type) {
                        Ok(_) => assert!(layer.media_type.contains(".tar")),
                        Err(e) => assert!(e.to_string().contains("unsupported media type")),
                    }
                }
            }
            Err(e) => {
                let _ = e.kind();
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

fn descriptor_round_trips(d: &manifest::Descriptor) {
    let json = serde_json::to_vec(d).expect("a descriptor serializes");
    let back: manifest::Descriptor = serde_json::from_slice(&json).expect("and parses back");
    assert_eq!(&back, d);
    assert_eq!(d.digest.to_string().parse::<Digest>().ok(), Some(d.digest));
}

/// Image configs: every diff ID is a well-formed digest, and the chain IDs follow the OCI
/// definition computed here independently.
pub fn config(data: &[u8]) {
    let Ok(config) = manifest::parse_config(data) else {
        return;
    };
    let diff_ids = &config.rootfs.diff_ids;
    let chains = hoist::pull::plan::chain_ids(diff_ids);
    assert_eq!(chains.len(), diff_ids.len());
    let mut parent: Option<String> = None;
    for (diff_id, chain) in diff_ids.iter().zip(&chains) {
        assert_eq!(diff_id.to_string().parse::<Digest>().ok(), Some(*diff_id));
        let expected = match &parent {
            None => diff_id.to_string(),
            Some(p) => format!("sha256:{}", sha256_hex(format!("{p} {diff_id}").as_bytes())),
        };
        assert_eq!(chain.to_string(), expected);
        parent = Some(expected);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `WWW-Authenticate`: a Bearer challenge always has a realm, and a challenge rendered back
/// into a header parses to the same value.
pub fn www_authenticate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Challenge::parse(text) {
        Ok(Challenge::Basic) => {
            assert!(text.trim_start().to_ascii_lowercase().starts_with("basic"));
        }
        Ok(challenge @ Challenge::Bearer { .. }) => {
            let Challenge::Bearer {
                realm,
                service,
                scope,
            } = &challenge
            else {
                unreachable!("matched above");
            };
            assert!(!realm.is_empty());
            let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            let mut shown = format!("Bearer realm={}", quote(realm));
            if let Some(service) = service {
                shown.push_str(&format!(",service={}", quote(service)));
            }
            if let Some(scope) = scope {
                shown.push_str(&format!(",scope={}", quote(scope)));
            }
            assert_eq!(Challenge::parse(&shown), Ok(challenge));
        }
        Err(ChallengeError::Unsupported(scheme)) => {
            assert!(
                !scheme.eq_ignore_ascii_case("basic") && !scheme.eq_ignore_ascii_case("bearer")
            );
        }
        Err(ChallengeError::NoRealm | ChallengeError::Malformed(_)) => {}
    }
}

/// Tar layers: whatever the archive holds, unpacking it creates nothing outside the layer
/// directory, never touches a file beside it, and links nothing to it; with either writer.
pub fn unpack(data: &[u8]) {
    unpack_with(data, false);
    unpack_with(data, true);
}

fn unpack_with(data: &[u8], io_uring: bool) {
    let root = tempfile::tempdir().expect("a temporary directory");
    let layer = root.path().join("layer");
    std::fs::create_dir(&layer).expect("the layer directory");
    let sentinel = root.path().join("outside");
    std::fs::write(&sentinel, b"untouched").expect("the sentinel");
    let options = unpack::Options {
        // Device nodes are refused here so a fuzzer on a CI machine never makes one.
        allow_devices: false,
        max_entries: Some(10_000),
        max_bytes: Some(64 << 20),
        io_uring,
    };
    let outside = escape_targets(data, &layer);
    let result = unpack::unpack(Cursor::new(data), &layer, &options);
    if let Err(e) = &result {
        assert!(!e.to_string().is_empty());
    }
    let mut beside: Vec<_> = std::fs::read_dir(root.path())
        .expect("the temporary directory is readable")
        .map(|e| e.expect("a directory entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["layer", "outside"],
        "nothing created beside the layer"
    );
    assert_eq!(
        std::fs::read(&sentinel).expect("the sentinel"),
        b"untouched"
    );
    let sentinel_meta = std::fs::symlink_metadata(&sentinel).expect("the sentinel");
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&sentinel_meta),
        1,
        "no hardlink to it"
    );
    assert_no_device(&layer);
    for path in outside {
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{path:?} was created outside the layer"
        );
    }
}

/// Every place outside `layer` that an entry of `data` would reach if the unpacker followed
/// `..`, absolute paths or the layer's own symlinks, and that does not exist yet.
fn escape_targets(data: &[u8], layer: &Path) -> Vec<PathBuf> {
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut paths = Vec::new();
    let mut archive = tar::Archive::new(Cursor::new(data));
    let Ok(entries) = archive.entries() else {
        return paths;
    };
    for entry in entries.take(1000) {
        let Ok(entry) = entry else { break };
        let Ok(path) = entry.path() else { continue };
        let path = path.into_owned();
        let mut reached = vec![lexical(&layer.join(&path))];
        for (link, target) in &links {
            if let Ok(rest) = path.strip_prefix(link) {
                let base = layer.join(link.parent().unwrap_or(Path::new("")));
                reached.push(lexical(&base.join(target).join(rest)));
            }
        }
        if entry.header().entry_type().is_symlink()
            && let Ok(Some(target)) = entry.link_name()
        {
            links.push((path.clone(), target.into_owned()));
        }
        paths.extend(
            reached
                .into_iter()
                .filter(|p| !p.starts_with(layer) && std::fs::symlink_metadata(p).is_err()),
        );
    }
    paths
}

/// `path` with `.` and `..` resolved by name alone.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn assert_no_device(dir: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            assert_no_device(&entry.path());
        } else if kind.is_block_device() {
            panic!(
                "block device {:?} made while devices are refused",
                entry.path()
            );
        } else if kind.is_char_device() {
            // Overlay whiteouts are 0/0 character devices; nothing else may be one.
            let meta = entry.metadata().expect("a character device's metadata");
            assert_eq!(
                std::os::unix::fs::MetadataExt::rdev(&meta),
                0,
                "{:?}",
                entry.path()
            );
        }
    }
}

/// Largest decompressed output a decode case may produce before it counts as a bomb.
const DECODE_LIMIT: u64 = 1 << 20;

/// Decode and verify: the first byte picks the compression, the rest is the blob. The blob
/// verifier accepts exactly the declared bytes; the decoder yields what an independent decoder
/// yields, accepts the right diff ID, refuses a wrong one, and stops bombs at the limit.
pub fn decode(data: &[u8]) {
    let Some((&selector, blob)) = data.split_first() else {
        return;
    };
    let compression = match selector % 3 {
        0 => Compression::None,
        1 => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let blob_digest = Digest::of(blob);
    let step = usize::from(selector / 3).max(1);
    verify_blob(blob, blob_digest, step);

    let expected = independent_decode(blob, compression);
    let diff_id = match &expected {
        Ok(bytes) => Digest::of(bytes),
        Err(_) => Digest::of(b"unused: decoding fails"),
    };
    let decoder = decode::Decoder::new(
        Cursor::new(blob),
        compression,
        blob_digest,
        diff_id,
        Some(DECODE_LIMIT),
    )
    .expect("a decoder over memory");
    match (decoder.finish(), &expected) {
        (Ok(size), Ok(bytes)) => assert_eq!(size, bytes.len() as u64),
        (Err(decode::Error::Bomb { limit, .. }), Err(Independent::TooLarge)) => {
            assert_eq!(limit, DECODE_LIMIT)
        }
        (Err(decode::Error::Decompress { blob, .. }), Err(Independent::Corrupt)) => {
            assert_eq!(blob, blob_digest)
        }
        // Over the limit and corrupt further on: which the decoder meets first depends on how
        // much it asks for at a time, and either error is right.
        (Err(decode::Error::Decompress { blob: digest, .. }), Err(Independent::TooLarge))
            if corrupt_past_the_limit(blob, compression) =>
        {
            assert_eq!(digest, blob_digest)
        }
        (got, want) => panic!("decoder gave {got:?}, independent decoding {want:?}"),
    }
    if let Ok(bytes) = &expected {
        let wrong = Digest::of(&[bytes.as_slice(), b"x"].concat());
        let decoder =
            decode::Decoder::new(Cursor::new(blob), compression, blob_digest, wrong, None)
                .expect("a decoder over memory");
        assert!(matches!(
            decoder.finish(),
            Err(decode::Error::DiffId { .. })
        ));
    }
}

fn verify_blob(blob: &[u8], digest: Digest, step: usize) {
    let mut verifier = decode::BlobVerifier::new(digest, blob.len() as u64);
    for piece in blob.chunks(step) {
        verifier.update(piece).expect("exactly the declared bytes");
    }
    verifier.finish().expect("the right digest and size");
    if let Some(short) = (blob.len() as u64).checked_sub(1) {
        let mut verifier = decode::BlobVerifier::new(digest, short);
        let refused = blob
            .chunks(step)
            .any(|piece| verifier.update(piece).is_err());
        assert!(
            refused,
            "a blob longer than its descriptor is refused as it arrives"
        );
    }
    let other = Digest::of(&[blob, b"x"].concat());
    let mut verifier = decode::BlobVerifier::new(other, blob.len() as u64);
    verifier.update(blob).expect("within the declared size");
    assert!(matches!(
        verifier.finish(),
        Err(decode::Error::BlobDigest { .. })
    ));
}

#[derive(Debug)]
enum Independent {
    TooLarge,
    Corrupt,
}

/// Whether decoding `blob` past [`DECODE_LIMIT`] (up to 64 times it) fails.
fn corrupt_past_the_limit(blob: &[u8], compression: Compression) -> bool {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => return false,
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(blob) {
            Ok(d) => Box::new(d),
            Err(_) => return true,
        },
    };
    std::io::copy(&mut reader.take(64 * DECODE_LIMIT), &mut std::io::sink()).is_err()
}

fn independent_decode(blob: &[u8], compression: Compression) -> Result<Vec<u8>, Independent> {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(blob) {
            Ok(d) => Box::new(d),
            Err(_) => return Err(Independent::Corrupt),
        },
    };
    let mut out = Vec::new();
    match reader.take(DECODE_LIMIT + 1).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > DECODE_LIMIT => Err(Independent::TooLarge),
        Ok(_) => Ok(out),
        Err(_) => Err(Independent::Corrupt),
    }
}

/// The config file with `[[connector]]`, `[[route]]` and `default_connector`: whatever parses
/// passes the connector checks again, and every scope and connector reference in it (and on
/// any line of the input) displays as a string that parses to the same value.
pub fn connector_config(data: &[u8]) {
    use hoist::connectors::{ConnectorRef, Scope};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    fn round_trips<T>(text: &str)
    where
        T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    {
        if let Ok(value) = text.parse::<T>() {
            let shown = value.to_string();
            let again = shown.parse::<T>().ok();
            assert_eq!(again.as_ref(), Some(&value), "{shown:?}");
        }
    }
    for line in text.lines().take(64) {
        let line = line.trim().trim_matches('"');
        round_trips::<Scope>(line);
        round_trips::<ConnectorRef>(line);
    }
    let Ok(config) = hoist::config::Config::parse(text) else {
        return;
    };
    let settings = config.connector_settings();
    settings
        .check()
        .expect("a parsed config passes its own checks");
    for connector in &settings.connectors {
        let scope: Scope = connector.scope.parse().expect("a checked scope parses");
        round_trips::<Scope>(&scope.to_string());
    }
    for name in settings
        .routes
        .iter()
        .map(|r| r.connector.as_str())
        .chain(settings.default_connector.as_deref())
    {
        let reference: ConnectorRef = name.parse().expect("a checked reference parses");
        round_trips::<ConnectorRef>(&reference.to_string());
    }
}

fn reference_round_trips(reference: &hoist::Reference) {
    let shown = reference.to_string();
    assert_eq!(
        shown.parse::<hoist::Reference>().ok().as_ref(),
        Some(reference)
    );
}

/// devcontainer.json: parsing is deterministic, and the image and connector it yields display
/// as strings that parse to the same values.
pub fn devcontainer(data: &[u8]) {
    use hoist::workspace::devcontainer;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = devcontainer::parse(text);
    assert_eq!(
        format!("{first:?}"),
        format!("{:?}", devcontainer::parse(text))
    );
    if let Ok(target) = first {
        reference_round_trips(&target.image);
        if let Some(connector) = target.connector {
            let shown = connector.reference.to_string();
            let again = shown.parse::<hoist::connectors::ConnectorRef>().ok();
            assert_eq!(again.as_ref(), Some(&connector.reference));
        }
    }
}

/// Dockerfile `FROM` lines: the base images are distinct, non-empty single words, and the
/// same text always gives the same list.
pub fn dockerfile(data: &[u8]) {
    use hoist::workspace::dockerfile;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = dockerfile::base_images(text);
    assert_eq!(
        format!("{first:?}"),
        format!("{:?}", dockerfile::base_images(text))
    );
    if let Ok(images) = first {
        for (i, image) in images.iter().enumerate() {
            assert!(!image.is_empty());
            assert!(!image.contains(char::is_whitespace), "{image:?}");
            assert!(!images[..i].contains(image), "{image:?} listed twice");
        }
    }
}

/// .gitpod.yml (beside a Dockerfile `FROM alpine:3.20 AS base`): whatever loads names at
/// least one image, and every image displays as a string that parses to the same value.
pub fn gitpod(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join(".gitpod.yml");
    std::fs::write(&file, data).expect("the .gitpod.yml");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM alpine:3.20 AS base\nFROM base\n",
    )
    .expect("the Dockerfile");
    if let Ok(targets) = hoist::workspace::gitpod::load(&file) {
        assert!(!targets.is_empty());
        for target in &targets {
            reference_round_trips(&target.image);
            assert!(target.connector.is_none());
        }
    }
}
