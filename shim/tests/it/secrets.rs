//! Known secret values through full pulls (Basic auth, and a Bearer token traded for a
//! password) with every tracing event down to TRACE captured: no password, token or
//! `Authorization` value may appear in the logs, in error messages or in `Debug` output.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use hoist::registry::{Credentials, Secret};

use crate::faults::{assert_pulled, three_layers};
use crate::support::{Comp, Faults, FaultyRegistry, Node, options};

const PASSWORD: &str = "pw-7c1d93e0-known-password";
const TOKEN: &str = "tk-4be2a617-known-token";

/// Every event of the process at TRACE, formatted as the daemon would log it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once for the whole test binary (other tests' events
/// land in it too, which only widens the check).
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn credentials(password: &str) -> Credentials {
    Credentials::Basic {
        username: "user".into(),
        password: Secret::new(password),
    }
}

#[tokio::test]
async fn secrets_never_appear_in_logs_errors_or_debug_output() {
    let log = captured();
    let secrets = Some((PASSWORD.to_owned(), TOKEN.to_owned()));
    let mut said = Vec::new();

    // Basic auth, then a Bearer token for the same password.
    for bearer in [false, true] {
        let faults = Faults {
            basic_auth: !bearer,
            bearer_auth: bearer,
            secrets: secrets.clone(),
            ..Faults::default()
        };
        let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
        let node = Node::new(&registry.host(), options(64 << 10));
        let wrong = node
            .pull(&registry.reference(), credentials("pw-wrong-0a9f"))
            .await
            .unwrap_err();
        said.push(wrong.to_string());
        said.push(format!("{wrong:?}"));
        let result = node
            .pull(&registry.reference(), credentials(PASSWORD))
            .await;
        said.push(format!("{result:?}"));
        assert_pulled(&node, &result);
        // The puller holds the client, its token cache and the credentials.
        said.push(format!("{:?}", node.puller));
        said.push(format!("{:?}", credentials(PASSWORD)));
        said.push(format!(
            "{:?}",
            Credentials::RegistryToken(Secret::new(TOKEN))
        ));
    }

    let logs = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("DEBUG") && logs.contains("pulled"),
        "the pulls' debug events were captured"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{PASSWORD}"));
    let forbidden = [PASSWORD, TOKEN, "pw-wrong-0a9f", basic.as_str()];
    for text in said.iter().map(String::as_str).chain([logs.as_str()]) {
        for secret in forbidden {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
}

/// A credential that cannot be an HTTP header value (a newline pasted into a pull secret, a
/// control character in a token service's answer) is a typed error naming the registry; it
/// was once sent as an empty `Authorization` header, and the pull failed as "credentials were
/// refused".
#[tokio::test]
async fn a_credential_that_is_not_a_header_value_is_an_error_naming_the_registry() {
    const BAD_TOKEN: &str = "tk-0d5e-bad\ntoken";
    const BAD_ISSUED: &str = "tk-91a2-issued\u{7}token";
    let cases = [
        // kubelet's registry_token, used as the Bearer token as is.
        (
            None,
            Credentials::RegistryToken(Secret::new(BAD_TOKEN)),
            "tk-0d5e",
        ),
        // A token service that answers a token with a BEL in it.
        (
            Some((PASSWORD.to_owned(), BAD_ISSUED.to_owned())),
            credentials(PASSWORD),
            "tk-91a2",
        ),
    ];
    for (secrets, credentials, secret) in cases {
        let faults = Faults {
            bearer_auth: true,
            secrets,
            ..Faults::default()
        };
        let registry = FaultyRegistry::start(three_layers(Comp::Gzip), faults).await;
        let node = Node::new(&registry.host(), options(64 << 10));
        let e = node
            .pull(&registry.reference(), credentials)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("registry {}", registry.host()))
                && text.contains("the credentials cannot be sent"),
            "{text}"
        );
        assert!(!text.contains("refused"), "{text}");
        for shown in [text, format!("{e:?}")] {
            assert!(!shown.contains(secret), "{secret:?} leaked into: {shown}");
        }
        assert_eq!(e.kind(), hoist::error::Kind::InvalidArgument);
    }
}
