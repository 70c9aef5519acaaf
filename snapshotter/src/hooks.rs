//! Pause points for crash tests: `kill -9` of `hoist serve` at a chosen moment of a pull, not
//! after a guessed delay. The pull engine calls [`pause`] with a stage name where a kill is
//! worth testing (`fetch`, `unpack`, `commit`, `register`); when the binary armed that stage
//! (`HOIST_TEST_PAUSE_AT=STAGE[:N]`, read by `hoist`'s `main`), the N-th call writes the marker
//! file and blocks its thread until the process is killed.
//!
//! Debug builds only (`debug_assertions`): in a release build [`pause`] is empty and [`arm`]
//! does not exist, so production binaries carry neither the hook nor the environment variable.
//! It lives here, the lowest crate, because the commit point is inside [`crate::Store`].

#[cfg(debug_assertions)]
use std::path::PathBuf;
#[cfg(debug_assertions)]
use std::sync::OnceLock;
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicU64, Ordering};

/// The stages a pull can be paused at.
pub const STAGES: [&str; 4] = ["fetch", "unpack", "commit", "register"];

/// Why a pause point cannot be armed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not `STAGE[:N]` with a known stage and N ≥ 1.
    #[error(
        "pause point {0:?} is not STAGE[:N] with STAGE one of fetch, unpack, commit, register and N ≥ 1"
    )]
    Spec(String),
    /// A pause point was armed already.
    #[error("a pause point is armed already")]
    Armed,
}

#[cfg(debug_assertions)]
#[derive(Debug)]
struct Armed {
    stage: &'static str,
    nth: u64,
    reached: AtomicU64,
    marker: PathBuf,
}

#[cfg(debug_assertions)]
static ARMED: OnceLock<Armed> = OnceLock::new();

/// Arms the pause point `spec` (`STAGE`, or `STAGE:N` for the N-th time the stage is reached;
/// N defaults to 1): when reached, `marker` is created (complete when it appears) and the
/// calling thread blocks for good. Once per process.
#[cfg(debug_assertions)]
pub fn arm(spec: &str, marker: PathBuf) -> Result<(), Error> {
    let bad = || Error::Spec(spec.to_owned());
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => (name, n.parse::<u64>().map_err(|_| bad())?),
        None => (spec, 1),
    };
    let stage = STAGES.into_iter().find(|s| *s == name).ok_or_else(bad)?;
    if nth == 0 {
        return Err(bad());
    }
    ARMED
        .set(Armed {
            stage,
            nth,
            reached: AtomicU64::new(0),
            marker,
        })
        .map_err(|_| Error::Armed)
}

/// A pause point named `stage`: a no-op unless this stage was armed (debug builds only).
#[inline]
pub fn pause(stage: &str) {
    #[cfg(debug_assertions)]
    if let Some(armed) = ARMED.get()
        && armed.stage == stage
        && armed.reached.fetch_add(1, Ordering::SeqCst) + 1 == armed.nth
    {
        // Written aside and renamed, so the test never sees a half-written marker.
        let aside = armed.marker.with_extension("partial");
        if std::fs::write(&aside, stage).is_ok() {
            let _ = std::fs::rename(&aside, &armed.marker);
        }
        tracing::warn!(stage, "paused for a crash test until killed");
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = stage;
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let marker = PathBuf::from("/nonexistent/marker");
        for bad in ["", "fetch:0", "fetch:x", "unpacking", "commit:1:2", "FETCH"] {
            let e = arm(bad, marker.clone()).unwrap_err();
            assert!(matches!(e, Error::Spec(_)), "{bad}: {e}");
        }
        // Arming a stage no test calls here: every other stage still passes through.
        arm("register:3", marker.clone()).unwrap();
        assert!(matches!(arm("fetch", marker), Err(Error::Armed)));
        for stage in ["fetch", "unpack", "commit", "register", "register"] {
            pause(stage);
        }
    }
}
