//! The credentials kubelet sends with a pull (`AuthConfig`, from the pod's imagePullSecrets),
//! read the way containerd's CRI reads them.
//!
//! * When `server_address` is set and names another registry, the credentials are not for
//!   this image and are ignored (the pull goes on anonymously, as containerd does).
//! * `username`/`password` first, then `identity_token` (an OAuth2 refresh token), then `auth`
//!   (base64 of `user:password`), then `registry_token` (a Bearer token used as is).
//! * An empty `AuthConfig` means anonymous.

use base64::Engine;

use crate::proto::cri::v1::AuthConfig;
use crate::registry::{Credentials, Secret};

/// A malformed `AuthConfig`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// `auth` is not base64 of `user:password`. The value itself is never shown.
    #[error("auth config for {registry}: the `auth` field is not base64 of user:password")]
    BadAuth {
        /// The registry the credentials were for.
        registry: String,
    },
}

/// The credentials `auth` gives for `registry` (`host` or `host:port`).
pub fn credentials(auth: Option<&AuthConfig>, registry: &str) -> Result<Credentials, Error> {
    let Some(auth) = auth else {
        return Ok(Credentials::Anonymous);
    };
    if !auth.server_address.is_empty() && !same_registry(&auth.server_address, registry) {
        tracing::debug!(%registry, server_address = %auth.server_address, "kubelet's credentials are for another registry; ignored");
        return Ok(Credentials::Anonymous);
    }
    if !auth.username.is_empty() {
        return Ok(Credentials::Basic {
            username: auth.username.clone(),
            password: Secret::new(auth.password.clone()),
        });
    }
    if !auth.identity_token.is_empty() {
        return Ok(Credentials::IdentityToken(Secret::new(
            auth.identity_token.clone(),
        )));
    }
    if !auth.auth.is_empty() {
        let bad = || Error::BadAuth {
            registry: registry.to_owned(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Credentials::Basic {
            username: username.to_owned(),
            password: Secret::new(password.trim_end_matches('\0')),
        });
    }
    if !auth.registry_token.is_empty() {
        return Ok(Credentials::RegistryToken(Secret::new(
            auth.registry_token.clone(),
        )));
    }
    Ok(Credentials::Anonymous)
}

/// Whether `server_address` (`https://host:port/v1/`, `host:port`, `host`) names `registry`.
/// Docker Hub's historical names all mean `docker.io`.
fn same_registry(server_address: &str, registry: &str) -> bool {
    let rest = server_address
        .split_once("://")
        .map_or(server_address, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or_default();
    canonical(host) == canonical(registry)
}

fn canonical(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(c: &Credentials) -> Option<(&str, &str)> {
        match c {
            Credentials::Basic { username, password } => Some((username, password.expose())),
            _ => None,
        }
    }

    #[test]
    fn username_and_password() {
        let auth = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..AuthConfig::default()
        };
        let c = credentials(Some(&auth), "r.example").unwrap();
        assert_eq!(basic(&c), Some(("u", "p")));
    }

    #[test]
    fn auth_field_is_base64_user_colon_password() {
        let auth = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("user:pa:ss\0"),
            ..AuthConfig::default()
        };
        let c = credentials(Some(&auth), "r.example").unwrap();
        assert_eq!(basic(&c), Some(("user", "pa:ss")));
        let bad = AuthConfig {
            auth: "!!!".into(),
            ..AuthConfig::default()
        };
        let err = credentials(Some(&bad), "r.example").unwrap_err();
        assert!(!err.to_string().contains("!!!"), "{err}");
        let no_colon = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("secretvalue"),
            ..AuthConfig::default()
        };
        let err = credentials(Some(&no_colon), "r.example").unwrap_err();
        assert!(!err.to_string().contains("secretvalue"), "{err}");
    }

    #[test]
    fn tokens() {
        let auth = AuthConfig {
            identity_token: "refresh".into(),
            ..AuthConfig::default()
        };
        assert!(matches!(
            credentials(Some(&auth), "r.example").unwrap(),
            Credentials::IdentityToken(t) if t.expose() == "refresh"
        ));
        let auth = AuthConfig {
            registry_token: "bearer".into(),
            ..AuthConfig::default()
        };
        assert!(matches!(
            credentials(Some(&auth), "r.example").unwrap(),
            Credentials::RegistryToken(t) if t.expose() == "bearer"
        ));
    }

    #[test]
    fn server_address_must_name_the_registry() {
        let auth = |server: &str| AuthConfig {
            username: "u".into(),
            password: "p".into(),
            server_address: server.into(),
            ..AuthConfig::default()
        };
        for (server, registry, matches) in [
            ("https://r.example:5000/v2/", "r.example:5000", true),
            ("r.example:5000", "r.example:5000", true),
            ("R.Example", "r.example", true),
            ("https://index.docker.io/v1/", "docker.io", true),
            ("other.example", "r.example", false),
            ("r.example:5001", "r.example:5000", false),
        ] {
            let c = credentials(Some(&auth(server)), registry).unwrap();
            assert_eq!(basic(&c).is_some(), matches, "{server} vs {registry}");
        }
    }

    #[test]
    fn nothing_is_anonymous() {
        assert!(matches!(
            credentials(None, "r").unwrap(),
            Credentials::Anonymous
        ));
        assert!(matches!(
            credentials(Some(&AuthConfig::default()), "r").unwrap(),
            Credentials::Anonymous
        ));
    }
}
