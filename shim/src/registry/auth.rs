//! Registry authentication: credentials, `WWW-Authenticate` challenges, and the Bearer token
//! flow of the distribution spec (`docs/spec/auth/token.md`), with tokens cached per
//! (registry, scope) until shortly before they expire.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: anonymous tokens only.
    #[default]
    Anonymous,
    /// A user name and password (or API key), sent as Basic or traded for a Bearer token.
    Basic {
        /// The user name.
        username: String,
        /// The password, API key or personal access token.
        password: Secret,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`), traded for an access token.
    IdentityToken(Secret),
    /// A registry access token, sent as `Bearer` as it is.
    RegistryToken(Secret),
}

/// Why a `WWW-Authenticate` header could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    /// No scheme this client supports (Basic or Bearer).
    #[error("unsupported authentication challenge {0:?}")]
    Unsupported(String),
    /// A Bearer challenge without a `realm` to ask for tokens.
    #[error("bearer challenge has no realm")]
    NoRealm,
    /// The header is not `scheme param=value, ...`.
    #[error("malformed authentication challenge {0:?}")]
    Malformed(String),
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The `scope` the registry asked for, if it said.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses the first supported challenge in a `WWW-Authenticate` value (RFC 7235).
    pub fn parse(header: &str) -> Result<Challenge, ChallengeError> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params =
            parse_params(rest).ok_or_else(|| ChallengeError::Malformed(header.to_owned()))?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic),
            "bearer" => {
                let realm = get("realm")
                    .filter(|r| !r.is_empty())
                    .ok_or(ChallengeError::NoRealm)?;
                Ok(Challenge::Bearer {
                    realm,
                    service: get("service"),
                    scope: get("scope"),
                })
            }
            _ => Err(ChallengeError::Unsupported(scheme.to_owned())),
        }
    }
}

/// `k=v, k="quoted, \"v\""` → pairs; `None` when malformed.
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// The JSON a token endpoint answers with.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it is good for: the spec's default of 60 s when the answer gives
    /// none, and never more than [`MAX_TOKEN_LIFETIME`], whatever number the answer holds.
    pub(crate) fn into_token(self) -> Option<(Secret, Duration)> {
        let token = self.access_token.or(self.token).filter(|t| !t.is_empty())?;
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(1));
        Some((Secret::new(token), lifetime.min(MAX_TOKEN_LIFETIME)))
    }
}

/// The longest a token is reused. Registries issue tokens for minutes (Docker Hub 300 s, ECR's
/// token service 12 h); a longer `expires_in` is a registry's mistake or a hostile number.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The most tokens held at once; past it, expired tokens go first, then those expiring soonest.
const MAX_CACHED_TOKENS: usize = 1024;

/// How long before its expiry a token is no longer handed out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// Bearer tokens by (registry, scope), reused until shortly before expiry.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: std::sync::Mutex<HashMap<(String, String), (Secret, Instant)>>,
}

impl TokenCache {
    /// The map. Every change to it is one insert or retain, so a panic elsewhere while the lock
    /// was held cannot leave it half-changed: a poisoned lock is taken over, never propagated
    /// to every later pull.
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Secret, Instant)>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A cached token still good for at least a few seconds.
    pub(crate) fn get(&self, registry: &str, scope: &str) -> Option<Secret> {
        let tokens = self.tokens();
        let (token, expires) = tokens.get(&(registry.to_owned(), scope.to_owned()))?;
        let good_until = expires.checked_sub(EXPIRY_MARGIN)?;
        (Instant::now() < good_until).then(|| token.clone())
    }

    pub(crate) fn put(&self, registry: &str, scope: &str, token: Secret, lifetime: Duration) {
        let now = Instant::now();
        let Some(expires) = now.checked_add(lifetime.min(MAX_TOKEN_LIFETIME)) else {
            return;
        };
        let mut tokens = self.tokens();
        tokens.retain(|_, (_, expires)| *expires > now);
        while tokens.len() >= MAX_CACHED_TOKENS {
            let Some(soonest) = tokens
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            tokens.remove(&soonest);
        }
        tokens.insert((registry.to_owned(), scope.to_owned()), (token, expires));
    }

    /// How many tokens are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_expires_in_is_capped_and_cached_without_overflow() {
        let answer: TokenResponse =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        let (token, lifetime) = answer.into_token().unwrap();
        assert_eq!(lifetime, MAX_TOKEN_LIFETIME);
        let cache = TokenCache::default();
        cache.put("r", "s", token.clone(), lifetime);
        assert!(cache.get("r", "s").is_some());
        // Even a caller that does not cap the lifetime cannot overflow the clock.
        cache.put("r", "s2", token, Duration::MAX);
        assert!(cache.get("r", "s2").is_some());
    }

    #[test]
    fn the_cache_is_bounded_and_drops_expired_tokens() {
        let cache = TokenCache::default();
        cache.put("r", "gone", Secret::new("t"), Duration::ZERO);
        for i in 0..MAX_CACHED_TOKENS + 10 {
            cache.put(
                "r",
                &format!("s{i}"),
                Secret::new("t"),
                Duration::from_secs(60 + i as u64),
            );
        }
        assert_eq!(cache.len(), MAX_CACHED_TOKENS);
        assert!(cache.get("r", "gone").is_none());
        assert!(
            cache.get("r", "s0").is_none(),
            "the soonest to expire went first"
        );
        assert!(
            cache
                .get("r", &format!("s{}", MAX_CACHED_TOKENS + 9))
                .is_some()
        );
    }

    #[test]
    fn a_poisoned_lock_does_not_take_the_cache_down() {
        let cache = std::sync::Arc::new(TokenCache::default());
        let poisoner = std::sync::Arc::clone(&cache);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.tokens.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(cache.tokens.is_poisoned());
        cache.put("r", "s", Secret::new("t"), Duration::from_secs(60));
        assert!(cache.get("r", "s").is_some());
    }

    #[test]
    fn parses_challenges() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                Ok(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/alpine:pull".into()),
                }),
            ),
            (
                r#"bearer realm=https://r/t, service="a \"b\"""#,
                Ok(Challenge::Bearer {
                    realm: "https://r/t".into(),
                    service: Some("a \"b\"".into()),
                    scope: None,
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Ok(Challenge::Basic)),
            ("Basic", Ok(Challenge::Basic)),
            (r#"Bearer service="x""#, Err(ChallengeError::NoRealm)),
            (
                "Negotiate abc",
                Err(ChallengeError::Malformed("Negotiate abc".into())),
            ),
            (
                r#"Digest realm="x""#,
                Err(ChallengeError::Unsupported("Digest".into())),
            ),
            (
                r#"Bearer realm="unterminated"#,
                Err(ChallengeError::Malformed(
                    r#"Bearer realm="unterminated"#.into(),
                )),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(Challenge::parse(header), want, "{header}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn token_cache_expires() {
        let cache = TokenCache::default();
        cache.put("r", "s", Secret::new("t"), Duration::from_secs(60));
        assert_eq!(
            cache.get("r", "s").map(|t| t.expose().to_owned()),
            Some("t".into())
        );
        assert!(cache.get("r", "other").is_none());
        cache.put("r", "s", Secret::new("t"), Duration::from_secs(3));
        assert!(
            cache.get("r", "s").is_none(),
            "a token about to expire is not reused"
        );
    }
}
