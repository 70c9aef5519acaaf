//! Faults on demand: what goes wrong, and which requests it happens to.

use std::time::Duration;

/// One thing a remote registry does wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the response, then reset the connection (TCP RST) after this many body bytes.
    Reset {
        /// Body bytes sent before the reset.
        after_bytes: u64,
    },
    /// Answer with this status (a 5xx, usually) without asking the registry.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After` in whole seconds.
    TooManyRequests {
        /// The delay the client is asked to wait.
        retry_after: Duration,
    },
    /// Drop the request's `Range` header, so the registry answers `200` with the whole blob.
    IgnoreRange,
    /// Forward this many body bytes, then send nothing for `duration` and close.
    Stall {
        /// Body bytes sent before the stall.
        after_bytes: u64,
        /// How long the connection stays silent (the proxy's shutdown ends it early).
        duration: Duration,
    },
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What happens.
    pub fault: Fault,
    /// Requests whose target contains this text (`/blobs/`, a digest); empty matches all.
    pub path_contains: String,
    /// Only requests with this method (`GET`, `HEAD`); `None` for any.
    pub method: Option<String>,
    /// How many matching requests it hits before it is spent; `None` for every one.
    pub times: Option<u32>,
}

impl Rule {
    /// `fault` on every `GET` of a blob (`/blobs/` in the path), `times` times.
    pub fn blobs(fault: Fault, times: Option<u32>) -> Rule {
        Rule {
            fault,
            path_contains: "/blobs/".to_owned(),
            method: Some("GET".to_owned()),
            times,
        }
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.times != Some(0)
            && target.contains(&self.path_contains)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// The rules in force, first match wins.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Adds a rule after the others.
    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The fault for this request, if a rule matches; spends one of that rule's times.
    pub fn take(&mut self, method: &str, target: &str) -> Option<Fault> {
        let rule = self.rules.iter_mut().find(|r| r.matches(method, target))?;
        if let Some(times) = &mut rule.times {
            *times -= 1;
        }
        Some(rule.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_in_order_and_run_out() {
        let mut rules = Rules::default();
        rules.push(Rule::blobs(Fault::Status(503), Some(1)));
        rules.push(Rule {
            fault: Fault::IgnoreRange,
            path_contains: String::new(),
            method: None,
            times: None,
        });
        assert_eq!(
            rules.take("GET", "/v2/a/blobs/sha256:1"),
            Some(Fault::Status(503))
        );
        assert_eq!(
            rules.take("GET", "/v2/a/blobs/sha256:1"),
            Some(Fault::IgnoreRange)
        );
        assert_eq!(
            rules.take("HEAD", "/v2/a/manifests/v1"),
            Some(Fault::IgnoreRange)
        );
        rules.clear();
        assert_eq!(rules.take("GET", "/v2/a/blobs/sha256:1"), None);
    }
}
