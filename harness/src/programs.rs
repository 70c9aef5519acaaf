//! Tiny static programs for containers, kept as C source and compiled with `gcc -static -Os` when
//! a test needs them (gcc and glibc's `libc.a` are on every machine the tests run on): `pause`,
//! the sandbox ("pause") container's process, and `echo`, a workload that prints its arguments
//! and exits 0. [`Program::image`] puts one in a one-layer image.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Kind;
use crate::image::{Compression, Entry, Image, Layer};

/// Failures of a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source or the binary could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// gcc could not be started.
    #[error("running gcc: {source} (install gcc and libc6-dev)")]
    Spawn {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// gcc ran and failed.
    #[error("gcc {program} failed ({status}): {stderr}")]
    Compile {
        /// The program's name.
        program: &'static str,
        /// The exit status.
        status: String,
        /// What gcc printed on stderr, trimmed.
        stderr: String,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Spawn { source } if source.kind() == std::io::ErrorKind::NotFound => {
                Kind::NotFound
            }
            Error::Io { .. } | Error::Spawn { .. } | Error::Compile { .. } => Kind::Internal,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// A program to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Sleeps until SIGTERM or SIGINT, then exits 0, reaping children meanwhile (as the pause
    /// container, PID 1 of a pod that shares its PID namespace, must).
    Pause,
    /// Prints its arguments, separated by spaces, and a newline on stdout; exits 0.
    Echo,
}

const PAUSE: &str = r#"#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t done;
static void stop(int sig) { (void)sig; done = 1; }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = stop;
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, 0);
    while (!done) pause();
    return 0;
}
"#;

const ECHO: &str = r#"#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf(i > 1 ? " %s" : "%s", argv[i]);
    putchar('\n');
    return fflush(stdout) == 0 ? 0 : 1;
}
"#;

impl Program {
    /// The program's name, also its file name in [`Program::build`]'s directory.
    pub fn name(self) -> &'static str {
        match self {
            Program::Pause => "pause",
            Program::Echo => "echo",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Program::Pause => PAUSE,
            Program::Echo => ECHO,
        }
    }

    /// Compiles the program as a static executable `dir/NAME`; returns its bytes.
    pub fn build(self, dir: &Path) -> Result<Vec<u8>> {
        let name = self.name();
        let source = dir.join(format!("{name}.c"));
        let binary = dir.join(name);
        std::fs::write(&source, self.source()).map_err(|e| io(&source, e))?;
        let output = Command::new("gcc")
            .args(["-static", "-Os", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .map_err(|source| Error::Spawn { source })?;
        if !output.status.success() {
            return Err(Error::Compile {
                program: name,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        std::fs::read(&binary).map_err(|e| io(&binary, e))
    }

    /// A one-layer gzip image holding the program built in `dir` as `/NAME`, its entrypoint.
    pub fn image(self, dir: &Path) -> Result<Image> {
        let mut image = Image::new(Vec::new());
        self.add_to(&mut image, dir)?;
        Ok(image)
    }

    /// Puts the program built in `dir` on top of `image` as `/NAME`, in a gzip layer of its
    /// own, and makes it the entrypoint.
    pub fn add_to(self, image: &mut Image, dir: &Path) -> Result<()> {
        let binary = self.build(dir)?;
        let path = self.name();
        image.layers.push(Layer::new(
            vec![Entry::file(path, binary).with_mode(0o755)],
            Compression::Gzip,
        ));
        image.config.entrypoint = vec![format!("/{path}")];
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_prints_its_arguments_and_exits_0() {
        let dir = tempfile::tempdir().unwrap();
        Program::Echo.build(dir.path()).unwrap();
        let out = Command::new(dir.path().join("echo"))
            .args(["hello", "from a pod"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"hello from a pod\n");
    }

    #[test]
    fn pause_exits_0_on_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        Program::Pause.build(dir.path()).unwrap();
        let mut child = Command::new(dir.path().join("pause")).spawn().unwrap();
        // Once its handler is installed (SIGTERM, 15, in the caught mask of /proc/PID/status).
        let status = format!("/proc/{}/status", child.id());
        let catches_term = || {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
        };
        let mut tries = 0;
        while !catches_term() {
            tries += 1;
            assert!(tries < 3000, "pause never installed its SIGTERM handler");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
    }

    #[test]
    fn image_runs_the_program_from_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let image = Program::Pause.image(dir.path()).unwrap();
        assert_eq!(image.config.entrypoint, ["/pause"]);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].entries.len(), 1);
    }
}
