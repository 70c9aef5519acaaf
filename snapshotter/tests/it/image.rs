//! A three-layer test image as an OCI layout, built offline: a static C program compiled here
//! by gcc, which prints a message read from a file that the upper layers provide.
//!
//! * layer 1: `/hello` and an empty `/etc`;
//! * layer 2: `/etc/hoist-message` = "from layer two";
//! * layer 3: `/etc/hoist-message` = "from layer three" (overlayfs must show this one).
//!
//! Layers are uncompressed tars (`application/vnd.oci.image.layer.v1.tar`), so a layer's
//! digest is its diff ID.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// What the container prints when it runs.
pub const OUTPUT: &str = "hello from hoist: from layer three\n";

const PROGRAM: &str = r#"#include <stdio.h>
int main(void) {
    char buf[128] = {0};
    FILE *f = fopen("/etc/hoist-message", "r");
    if (!f) { puts("hello from hoist: no message"); return 1; }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("hello from hoist: %s\n", buf);
    return 0;
}
"#;

/// The built image.
#[derive(Debug)]
pub struct Image {
    /// The OCI layout directory (tag `1`).
    pub layout: PathBuf,
    /// The layer tars, base first.
    pub layers: Vec<Vec<u8>>,
    /// The chain ID of each layer.
    pub chain_ids: Vec<String>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One tar entry: a directory when `content` is `None`.
fn tar(entries: &[(&str, Option<&[u8]>, u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match content {
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).unwrap();
    json!({ "digest": digest, "size": bytes.len() })
}

/// Compiles the program and writes the OCI layout under `dir`.
pub fn build(dir: &Path) -> Image {
    let source = dir.join("hello.c");
    let binary = dir.join("hello");
    std::fs::write(&source, PROGRAM).unwrap();
    let gcc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("running gcc");
    assert!(
        gcc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let program = std::fs::read(&binary).unwrap();

    let layers = vec![
        tar(&[("hello", Some(&program), 0o755), ("etc", None, 0o755)]),
        tar(&[("etc/hoist-message", Some(b"from layer two"), 0o644)]),
        tar(&[("etc/hoist-message", Some(b"from layer three"), 0o644)]),
    ];
    let digests: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let mut chain_ids: Vec<String> = Vec::new();
    for diff in &digests {
        let chain = match chain_ids.last() {
            None => diff.clone(),
            Some(parent) => sha256(format!("{parent} {diff}").as_bytes()),
        };
        chain_ids.push(chain);
    }

    let layout = dir.join("oci");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Cmd": ["/hello"] },
        "rootfs": { "type": "layers", "diff_ids": digests },
    });
    let mut config_desc = write_blob(&layout, config.to_string().as_bytes());
    config_desc["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let layer_descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let mut d = write_blob(&layout, l);
            d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
            d
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layer_descs,
    });
    let mut manifest_desc = write_blob(&layout, manifest.to_string().as_bytes());
    manifest_desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    manifest_desc["annotations"] = json!({ "org.opencontainers.image.ref.name": "1" });
    let index = json!({ "schemaVersion": 2, "manifests": [manifest_desc] });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    Image {
        layout,
        layers,
        chain_ids,
    }
}

/// Pushes the layout to `registry` as `hoist/hello:1` with skopeo; returns the reference.
pub fn push(image: &Image, registry: &str) -> String {
    let reference = format!("{registry}/hoist/hello:1");
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:1", image.layout.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reference
}
