//! `hoist-snapshotter --root DIR --socket PATH`: serves one snapshot store to containerd as a
//! proxy snapshotter, until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// Hoist's snapshot store, served to containerd as a proxy snapshotter.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The store's root directory.
    #[arg(long, env = "HOIST_SNAPSHOTTER_ROOT", default_value = "/var/lib/hoist")]
    root: PathBuf,
    /// The unix socket to serve containerd's snapshots API on (created with mode 0660).
    #[arg(
        long,
        env = "HOIST_SNAPSHOTTER_SOCKET",
        default_value = "/run/hoist/snapshots.sock"
    )]
    socket: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let root = args.root.clone();
    let store = tokio::task::spawn_blocking(move || hoist_snapshotter::Store::open(root))
        .await?
        .with_context(|| format!("opening the snapshot store {}", args.root.display()))?;
    hoist_snapshotter::service::serve(
        Arc::new(store),
        &args.socket,
        hoist_snapshotter::service::shutdown_signal(),
    )
    .await
    .with_context(|| format!("serving {}", args.socket.display()))?;
    Ok(())
}
