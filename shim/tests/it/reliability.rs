//! What the fault tests saw, for `docs/reliability.md`: when `HOIST_RELIABILITY_DIR` is set,
//! each fault case appends one JSON line (fault, outcome, blob requests, error) to a file in
//! that directory; `scripts/reliability.sh` runs the suite and renders the table from them.

use std::io::Write;

/// How a fault case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The pull succeeded (after retries) with the right bytes.
    Recovered,
    /// The pull failed with a clear error and left nothing behind.
    FailedCleanly,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::FailedCleanly => "failed cleanly",
        }
    }
}

/// Records one run of `fault` (call after the case's assertions passed).
pub fn record(fault: &str, outcome: Outcome, requests: usize, error: Option<&str>) {
    let Some(dir) = std::env::var_os("HOIST_RELIABILITY_DIR") else {
        return;
    };
    let line = serde_json::json!({
        "fault": fault,
        "outcome": outcome.as_str(),
        "requests": requests,
        "error": error.unwrap_or(""),
    });
    let path = std::path::Path::new(&dir).join(format!("faults-{}.jsonl", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    // One write per line: cases on other threads append to the same file.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}
