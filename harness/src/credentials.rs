//! Registry credentials handed to `skopeo` and `ctr`, kept out of `Debug` output.

use std::fmt;

/// A user name and password for a registry's basic or token authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, printed in `Debug`.
    pub username: String,
    /// The password, never printed.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Parses `USER:PASSWORD` (the password may contain `:`); `None` without a `:`.
    pub fn parse(user_colon_password: &str) -> Option<Self> {
        let (username, password) = user_colon_password.split_once(':')?;
        Some(Self::new(username, password))
    }

    /// `USER:PASSWORD`, the form `skopeo --dest-creds` and `ctr --user` take.
    pub(crate) fn joined(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let creds = Credentials::new("alice", "s3cret");
        let printed = format!("{creds:?}");
        assert!(printed.contains("alice"));
        assert!(!printed.contains("s3cret"));
    }

    #[test]
    fn parse_splits_at_first_colon() {
        let creds = Credentials::parse("bob:a:b").unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("bob", "a:b")
        );
        assert!(Credentials::parse("nocolon").is_none());
    }
}
