//! The full Bearer flow against a real docker-registry in token-auth mode (distribution's
//! `auth: token:`), whose tokens the harness's issuer signs and the registry verifies against
//! the issuer's certificate: skopeo pushes with `--creds`, Hoist pulls through a
//! `DockerRegistry` connector asking for per-repository scopes and reusing one token across
//! blobs; after a key rotation the registry refuses the cached token, and a 401 leads to a new
//! one; `connectors check` fetches a token.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hoist::connectors::{PodContext, check};
use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::Client;
use hoist_harness::image::{Compression, Entry, Image, Layer, layout};
use hoist_harness::skopeo;
use hoist_harness::token_issuer::{self, TokenIssuer};
use hoist_snapshotter::Store;

use crate::connector_services as cs;

pub(crate) const USER: &str = "tokenuser";
pub(crate) const PASSWORD: &str = "hoist-token-password-value";
const SERVICE: &str = "hoist-test-registry";
const ISSUER: &str = "hoist-test-issuer";

/// A docker-registry trusting `issuer`'s certificate; restartable on the same port and storage.
pub(crate) struct TokenRegistry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl TokenRegistry {
    pub(crate) fn start(issuer: &TokenIssuer) -> TokenRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = TokenRegistry {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port,
        };
        r.restart(issuer);
        r
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (Re)starts it trusting `issuer`'s current certificate.
    fn restart(&mut self, issuer: &TokenIssuer) {
        self.stop();
        let bundle = self.dir.path().join("issuer.pem");
        std::fs::write(&bundle, issuer.certificate_pem()).unwrap();
        let config: PathBuf = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n\
                 http:\n  addr: 127.0.0.1:{port}\n\
                 auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    \
                 issuer: {ISSUER}\n    rootcertbundle: {bundle}\n",
                storage = self.dir.path().join("storage").display(),
                port = self.port,
                realm = issuer.realm(),
                bundle = bundle.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        self.child = Some(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed (scripts/lib.sh hoist_install_deps)"),
        );
        for _ in 0..400 {
            if std::net::TcpStream::connect(self.host()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the token-auth registry did not listen on {}", self.host());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn issuer() -> TokenIssuer {
    TokenIssuer::start(token_issuer::Options {
        username: USER.into(),
        password: PASSWORD.into(),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        lifetime: Duration::from_secs(300),
    })
    .unwrap()
}

/// Pushes a four-layer image with skopeo through the issuer; returns its reference.
pub(crate) fn push(host: &str, repository: &str) -> String {
    let image = Image::new(
        (0..4)
            .map(|i| {
                Layer::new(
                    vec![Entry::file(
                        format!("f{i}"),
                        format!("{repository} {i}").into_bytes(),
                    )],
                    Compression::Gzip,
                )
            })
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    let options = skopeo::Options {
        credentials: Some(
            hoist_harness::Credentials::parse(&format!("{USER}:{PASSWORD}")).unwrap(),
        ),
        ..skopeo::Options::default()
    };
    skopeo::push(
        &written,
        &format!("{host}/{repository}"),
        "v1",
        &[],
        &options,
    )
    .unwrap()
    .references[0]
        .clone()
}

fn resolver(host: &str) -> hoist::connectors::Resolver {
    cs::resolver(
        &format!(
            "default_connector = \"account.tok\"\n[[connector]]\nid = \"tok\"\nscope = \"account\"\n\
             type = \"DockerRegistry\"\nregistry = \"{host}\"\n\
             auth = {{ username = \"{USER}\", password = {{ env = \"TOKEN_PASSWORD\" }} }}\n"
        ),
        &[("TOKEN_PASSWORD", PASSWORD)],
    )
}

async fn pull_with(
    resolver: &hoist::connectors::Resolver,
    client: &Arc<Client>,
    image: &str,
) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let puller = Puller::new(
        Arc::clone(client),
        Arc::new(Store::open(root.path()).unwrap()),
        Images::open(root.path()).unwrap(),
        Options::default(),
    );
    hoist::connectors::pull::pull(
        resolver,
        &puller,
        &image.parse().unwrap(),
        &PodContext::default(),
        None,
        Arc::new(Silent),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn client(host: &str) -> Arc<Client> {
    Arc::new(
        Client::new(&hoist::registry::Options {
            insecure: vec![host.to_owned()],
            ..Default::default()
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn token_auth_pull_asks_per_repository_scope_and_reuses_the_token_needs_registry() {
    let issuer = issuer();
    let registry = TokenRegistry::start(&issuer);
    let host = registry.host();
    let image = push(&host, "tok/app");
    let pushed = issuer.requests();
    assert!(pushed > 0, "skopeo went through the issuer");

    let r = resolver(&host);
    pull_with(&r, &client(&host), &image).await.unwrap();
    let fetched = issuer.requests() - pushed;
    assert!(
        (1..=2).contains(&fetched),
        "one token serves the manifest, the config and 4 layers: {fetched} token requests"
    );
    let scopes = issuer.stats().scopes();
    assert!(
        scopes[scopes.len() - fetched as usize..]
            .iter()
            .any(|s| s == "repository:tok/app:pull"),
        "{scopes:?}"
    );

    // The connectivity check performs the token fetch (no scope: GET /v2/).
    let before = issuer.requests();
    let rows = check::check(&r, &client(&host), None).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].result.is_ok(), "{:?}", rows[0].result);
    assert!(issuer.requests() > before, "the check fetched a token");

    // With a wrong password the issuer refuses, and the check says so without the secret.
    let wrong = cs::resolver(
        &format!(
            "[[connector]]\nid = \"tok\"\nscope = \"account\"\ntype = \"DockerRegistry\"\n\
             registry = \"{host}\"\n\
             auth = {{ username = \"{USER}\", password = {{ env = \"TOKEN_PASSWORD\" }} }}\n"
        ),
        &[("TOKEN_PASSWORD", "not-the-token-password")],
    );
    let refused = issuer
        .stats()
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    let rows = check::check(&wrong, &client(&host), None).await;
    let error = rows[0].result.as_ref().unwrap_err();
    assert!(error.contains("token service"), "{error}");
    assert!(!error.contains("not-the-token-password"), "{error}");
    assert!(
        issuer
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            > refused
    );
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced_and_the_pull_succeeds_needs_registry() {
    let issuer = issuer();
    let mut registry = TokenRegistry::start(&issuer);
    let host = registry.host();
    let image = push(&host, "tok/rotated");
    let r = resolver(&host);
    // No idle connections kept: the registry's restart below would leave them dead.
    let client = Arc::new(
        Client::new(&hoist::registry::Options {
            insecure: vec![host.clone()],
            pool_per_host: 0,
            ..Default::default()
        })
        .unwrap(),
    );
    pull_with(&r, &client, &image).await.unwrap();
    let cached = issuer.requests();

    // The issuer's key changes and the registry now trusts only the new certificate: the
    // token the client cached (good for 300 s by its expires_in) is refused.
    issuer.rotate_key().unwrap();
    registry.restart(&issuer);
    pull_with(&r, &client, &image).await.unwrap();
    let renewed = issuer.requests() - cached;
    assert!(
        (1..=2).contains(&renewed),
        "the 401 led to a new token, reused for the rest: {renewed} token requests"
    );
}
