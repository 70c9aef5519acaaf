//! What one pull costs: wall time, peak RSS and CPU seconds of the processes that did the work.
//!
//! A child is reaped with `wait4`, which returns its own resource usage (not that of other
//! children). A daemon that does the work for a client (containerd) is read from `/proc`: CPU
//! as the difference of `utime + stime` around the pull, peak RSS as `VmHWM`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Error, Result};

/// Cost of one measured piece of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Cost {
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Peak resident set size in MiB, summed over the processes involved (an upper bound of
    /// what they held at once).
    pub peak_rss_mib: f64,
    /// User + system CPU seconds, summed over the processes involved.
    pub cpu_s: f64,
}

impl Cost {
    /// This cost with another process's resources added (wall time unchanged).
    pub fn plus(self, other: Usage) -> Cost {
        Cost {
            wall_s: self.wall_s,
            peak_rss_mib: self.peak_rss_mib + other.peak_rss_mib,
            cpu_s: self.cpu_s + other.cpu_s,
        }
    }
}

/// Resources of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Peak RSS in MiB.
    pub peak_rss_mib: f64,
    /// User + system CPU seconds.
    pub cpu_s: f64,
}

/// Runs `command` to completion, its output captured, and returns its cost and stdout. Fails
/// with its stderr when it exits non-zero.
pub fn run(what: &str, mut command: Command) -> Result<(Cost, Vec<u8>)> {
    command.stdin(Stdio::null());
    let output_dir = tempfile::tempdir().map_err(|source| Error::Io {
        what: "a temporary directory for output".to_owned(),
        source,
    })?;
    // Files, not pipes: nothing has to drain them while the child runs.
    let (out_path, err_path) = (output_dir.path().join("out"), output_dir.path().join("err"));
    let file = |path: &std::path::Path| {
        std::fs::File::create(path).map_err(|source| Error::Io {
            what: format!("{}", path.display()),
            source,
        })
    };
    command.stdout(file(&out_path)?).stderr(file(&err_path)?);
    let started = Instant::now();
    let child = command.spawn().map_err(|source| Error::Spawn {
        what: what.to_owned(),
        source,
    })?;
    let (status, usage) = wait4(child.id()).map_err(|source| Error::Io {
        what: format!("waiting for {what}"),
        source,
    })?;
    let wall_s = started.elapsed().as_secs_f64();
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    if status != 0 {
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(Error::Failed {
            what: what.to_owned(),
            status: format!("wait status {status:#x}"),
            stderr: tail(&stderr),
        });
    }
    let cost = Cost {
        wall_s,
        ..Cost::default()
    }
    .plus(usage);
    Ok((cost, stdout))
}

/// The last lines of a tool's stderr, enough to say why it failed.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Reaps child `pid`, returning its raw wait status and its own resource usage.
fn wait4(pid: u32) -> std::io::Result<(i32, Usage)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unreaped child (std's `Child` never waits on drop) and both
        // pointers are to live, writable locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        // Killed by a signal: report the raw status, never 0.
        status.max(1) | 0x100
    };
    Ok((
        exit,
        Usage {
            // ru_maxrss is in KiB on Linux.
            peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        },
    ))
}

/// CPU seconds `pid` has used so far, from `/proc/PID/stat` (fields 14 and 15, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks.max(1.0))
}

/// Peak RSS of `pid` so far in MiB, from `VmHWM` in `/proc/PID/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A daemon's usage between [`Daemon::start`] and [`Daemon::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Daemon {
    pid: u32,
    cpu_before: f64,
}

impl Daemon {
    /// Starts accounting `pid`.
    pub fn start(pid: u32) -> Daemon {
        Daemon {
            pid,
            cpu_before: cpu_seconds(pid).unwrap_or(0.0),
        }
    }

    /// CPU used since [`Daemon::start`] and the peak RSS since the daemon started (a fresh
    /// daemon per measurement makes that the pull's).
    pub fn finish(self) -> Usage {
        Usage {
            peak_rss_mib: peak_rss_mib(self.pid).unwrap_or(0.0),
            cpu_s: (cpu_seconds(self.pid).unwrap_or(0.0) - self.cpu_before).max(0.0),
        }
    }
}

/// Polls `done` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}
