//! Both sockets of `hoist serve` serve gRPC clients that send the socket's path as HTTP/2
//! `:authority` (grpc-go before 1.64, as in kubelet and crictl up to 1.30; grpc-java; grpcio
//! with `grpc.default_authority`), percent-encoded (grpcio's default) or as `localhost` (tonic,
//! grpc-go 1.64+), and still reset a request that is malformed in another way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::Daemon;

/// The store at `node`'s root served by `hoist serve` on `run/cri.sock` and
/// `run/snapshots.sock`, registering nothing in containerd.
async fn serve(root: &Path) -> (Daemon, PathBuf, PathBuf) {
    let cri = root.join("run/cri.sock");
    let snapshots = root.join("run/snapshots.sock");
    let config = root.join("hoist.toml");
    std::fs::write(
        &config,
        format!(
            "root = {root:?}\n[serve]\ncri_socket = {cri:?}\nsnapshots_socket = {snapshots:?}\n\
             register = false\n"
        ),
    )
    .unwrap();
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    for socket in [&cri, &snapshots] {
        crate::support::connect_unix(socket, Duration::from_secs(30)).await;
    }
    (daemon, cri, snapshots)
}

#[tokio::test]
async fn grpcio_clients_are_served_on_both_sockets_whatever_their_authority() {
    let Some(python) = crate::support::required_env("HOIST_TEST_PYTHON", "grpcio_clients") else {
        return;
    };
    let (node, record, reference) = crate::support::pulled_two_layers().await;
    let id = record.config.to_string();
    let top = record.chain_ids.last().unwrap().to_string();
    let (_daemon, cri, snapshots) = serve(node.dir.path()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/authority_client.py");
    let (sockets, names) = ([cri.clone(), snapshots.clone()], [reference, id, top]);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(sockets)
            .args(names)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Three CRI calls and one snapshots call, each in both authority forms.
    assert_eq!(results.len(), 8, "{stdout}");
    for result in &results {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(
            result["names"], true,
            "the answer names the image: {result}"
        );
    }
    for form in ["default", "literal-path"] {
        for socket in [&cri, &snapshots] {
            assert!(
                results
                    .iter()
                    .any(|r| r["form"] == form && r["socket"] == socket.to_str().unwrap()),
                "{form} on {}",
                socket.display()
            );
        }
    }
}

/// What the server answered to a request on stream 1 sent as raw HTTP/2 frames.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// Response headers, then trailers with this `grpc-status`.
    Status(String),
    /// RST_STREAM with this error code.
    Reset(u32),
}

/// Sends `ImageFsInfo` on a new connection as one HTTP/2 request whose `:authority` is
/// `authority`, written literally (a plain literal indexed into the dynamic table, as grpc-go
/// encodes it), with `extra` headers, twice on streams 1 and 3 (the second refers to the
/// table's entry), and reads the answers.
async fn raw_request(socket: &Path, authority: &[u8], extra: &[(&[u8], &[u8])]) -> Vec<Answer> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.push(u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s);
    }
    fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
    }
    let mut first = vec![0x83, 0x86, 0x44]; // POST, http, :path indexed into the table
    string(&mut first, b"/runtime.v1.ImageService/ImageFsInfo");
    first.push(0x41);
    string(&mut first, authority);
    let mut second = vec![0x83, 0x86, 0xbf, 0xbe]; // the two entries just added
    for block in [&mut first, &mut second] {
        for (name, value) in [
            (&b"content-type"[..], &b"application/grpc"[..]),
            (b"te", b"trailers"),
        ]
        .iter()
        .chain(extra)
        {
            block.push(0x00);
            string(block, name);
            string(block, value);
        }
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    for (stream, block) in [(1, &first), (3, &second)] {
        frame(&mut out, 0x1, 0x4, stream, block);
        frame(&mut out, 0x0, 0x1, stream, &[0, 0, 0, 0, 0]);
    }
    let mut conn = UnixStream::connect(socket).await.unwrap();
    conn.write_all(&out).await.unwrap();

    let mut decoder = loona_hpack::Decoder::new();
    let mut answers = [None, None];
    let read = async {
        while answers.iter().any(Option::is_none) {
            let mut header = [0u8; 9];
            conn.read_exact(&mut header).await.unwrap();
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0; len];
            conn.read_exact(&mut payload).await.unwrap();
            let stream = u32::from_be_bytes([header[5] & 0x7f, header[6], header[7], header[8]]);
            let slot = match stream {
                1 => 0,
                3 => 1,
                _ => continue,
            };
            match header[3] {
                0x1 => {
                    for (name, value) in decoder.decode(&payload).unwrap() {
                        if name == b"grpc-status" {
                            answers[slot] = Some(Answer::Status(String::from_utf8(value).unwrap()));
                        }
                    }
                }
                0x3 => {
                    let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    answers[slot] = Some(Answer::Reset(code));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server answers both requests");
    answers.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn literal_socket_path_is_served_and_other_malformed_requests_are_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, cri, snapshots) = serve(dir.path()).await;
    let ok = Answer::Status("0".into());
    // The CRI socket answers ImageFsInfo; the snapshots socket has no such method (12).
    let unimplemented = Answer::Status("12".into());
    for (socket, want) in [(&cri, &ok), (&snapshots, &unimplemented)] {
        let path = socket.to_str().unwrap().as_bytes();
        for authority in [path, b"localhost", b"%2Frun%2Fhoist%2Fcri.sock"] {
            assert_eq!(
                raw_request(socket, authority, &[]).await,
                [want.clone(), want.clone()],
                "{}",
                String::from_utf8_lossy(authority)
            );
        }
        // A connection-specific header is malformed in HTTP/2 (RFC 9113 §8.2.2): reset with
        // PROTOCOL_ERROR (1), whatever the authority.
        for authority in [path, b"localhost"] {
            assert_eq!(
                raw_request(socket, authority, &[(b"connection", b"close")]).await,
                [Answer::Reset(1), Answer::Reset(1)]
            );
        }
    }
}
