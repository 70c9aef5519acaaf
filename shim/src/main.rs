//! The `hoist` command: a thin layer mapping flags onto the library.

// A command-line tool prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod cli_connectors;
use hoist::config::Config;
use hoist::images::Images;
use hoist::pull::Puller;
use hoist::registry::{Client, Credentials};
use hoist::{Reference, cri, mount, progress};
use hoist_snapshotter::Store;

/// Fast, credential-aware container image pulls for Kubernetes nodes.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull an image into the store: parallel fetch, verify, unpack, commit.
    Pull(PullArgs),
    /// Mount a pulled image's merged root filesystem read-only (undo with `umount TARGET`).
    Mount(MountArgs),
    /// Run the daemon: serve the snapshot store to containerd as the `hoist` proxy snapshotter.
    Serve(ServeArgs),
    /// Pull the images a devcontainer.json or .gitpod.yml names, with the connectors' credentials.
    Prefetch(cli_connectors::PrefetchArgs),
    /// Registry connectors.
    #[command(subcommand)]
    Connectors(cli_connectors::ConnectorsCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Unix socket for the CRI ImageService, kubelet's --image-service-endpoint
    /// [config: serve.cri_socket; default: /run/hoist/cri.sock].
    #[arg(long)]
    cri_socket: Option<PathBuf>,
    /// Unix socket for containerd's snapshots API
    /// [config: serve.snapshots_socket; default: /run/hoist/snapshots.sock].
    #[arg(long)]
    snapshots_socket: Option<PathBuf>,
    /// containerd's socket, where pulled images are registered
    /// [config: serve.containerd_socket; default: /run/containerd/containerd.sock].
    #[arg(long)]
    containerd_socket: Option<PathBuf>,
    /// containerd namespace of the image records [config: serve.namespace; default: k8s.io].
    #[arg(long)]
    namespace: Option<String>,
    /// Registry (HOST or HOST:PORT) to reach over plain HTTP; repeatable
    /// [config: insecure_registries].
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Config file [default: /etc/hoist/config.toml if it exists].
    #[arg(long, env = "HOIST_CONFIG")]
    config: Option<PathBuf>,
    /// Store directory [config: root; default: /var/lib/hoist].
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct PullArgs {
    #[command(flatten)]
    common: Common,
    /// Platform to pull from a multi-platform image, OS/ARCH[/VARIANT]
    /// [config: pull.platform; default: this machine's].
    #[arg(long)]
    platform: Option<String>,
    /// Registry (HOST or HOST:PORT) to reach over plain HTTP; repeatable
    /// [config: insecure_registries].
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// Print the summary as one JSON object instead of progress bars and a line.
    #[arg(long)]
    json: bool,
    /// The image, e.g. `alpine:3.20` or `registry.example.com/team/app@sha256:…`.
    image: String,
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    #[command(flatten)]
    common: Common,
    /// The image (reference or image ID).
    image: String,
    /// An existing directory to mount on.
    target: PathBuf,
}

fn load(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    if let Some(root) = &common.root {
        config.root.clone_from(root);
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Crash tests pause the pull at a chosen stage (debug builds only; see hoist::hooks).
    #[cfg(debug_assertions)]
    if let Some(at) = std::env::var_os("HOIST_TEST_PAUSE_AT") {
        let marker = std::env::var_os("HOIST_TEST_PAUSE_MARKER")
            .context("HOIST_TEST_PAUSE_AT needs HOIST_TEST_PAUSE_MARKER (a file to create)")?;
        hoist::hooks::arm(&at.to_string_lossy(), marker.into())?;
    }
    match Cli::parse().command {
        Command::Pull(args) => pull(args),
        Command::Serve(args) => serve(args),
        Command::Prefetch(args) => cli_connectors::prefetch(args),
        Command::Connectors(cli_connectors::ConnectorsCommand::Check(args)) => {
            cli_connectors::check(args)
        }
        Command::Mount(args) => {
            let config = load(&args.common)?;
            let store = Store::open(&config.root)?;
            let images = Images::open(&config.root)?;
            let record = mount::mount_image(&store, &images, &args.image, &args.target)?;
            eprintln!(
                "mounted {} read-only on {}",
                record.name,
                args.target.display()
            );
            Ok(())
        }
    }
}

#[tokio::main]
async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let mut config = load(&args.common)?;
    config
        .insecure_registries
        .extend(args.insecure_registry.iter().cloned());
    if args.platform.is_some() {
        config.pull.platform.clone_from(&args.platform);
    }
    let reference: Reference = args.image.parse()?;
    let client = Arc::new(Client::new(&config.registry_options())?);
    let store = Arc::new(Store::open(&config.root).with_context(|| "opening the snapshot store")?);
    let images = Images::open(&config.root)?;
    let puller = Puller::new(client, store, images, config.pull_options()?);
    let bars = Arc::new(progress::Bars::new(args.json));
    let pulled = puller
        .pull(&reference, Credentials::Anonymous, bars.clone())
        .await;
    bars.finish();
    let pulled = pulled?;
    if args.json {
        println!("{}", serde_json::to_string(&pulled)?);
    } else {
        let mb = pulled.fetched_bytes as f64 / 1e6;
        println!(
            "pulled {} (id {}): {} layers ({} fetched), {:.1} MB in {:.3} s, {:.1} MB/s, {:.1} MB unpacked",
            pulled.image,
            pulled.id,
            pulled.layers,
            pulled.fetched_layers,
            mb,
            pulled.seconds,
            mb / pulled.seconds.max(1e-9),
            pulled.unpacked_bytes as f64 / 1e6,
        );
    }
    Ok(())
}

#[tokio::main]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load(&args.common)?;
    let serve = &mut config.serve;
    if let Some(socket) = args.snapshots_socket {
        serve.snapshots_socket = socket;
    }
    if let Some(socket) = args.cri_socket {
        serve.cri_socket = socket;
    }
    if let Some(socket) = args.containerd_socket {
        serve.containerd_socket = socket;
    }
    if let Some(namespace) = args.namespace {
        serve.namespace = namespace;
    }
    config.insecure_registries.extend(args.insecure_registry);
    let root = config.root.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(root))
        .await?
        .with_context(|| format!("opening the snapshot store {}", config.root.display()))?;
    let store = Arc::new(store);
    let client = Arc::new(Client::new(&config.registry_options())?);
    let images = Images::open(&config.root)?;
    let mut pull_options = config.pull_options()?;
    pull_options.keep_layer_blobs = config.serve.register && config.serve.keep_layer_blobs;
    let puller = Arc::new(Puller::new(
        client,
        Arc::clone(&store),
        images,
        pull_options,
    ));
    let serve = &config.serve;
    let containerd = match serve.register {
        true => Some(
            hoist::containerd::Client::connect_lazy(&serve.containerd_socket, &serve.namespace)
                .with_context(|| format!("containerd at {}", serve.containerd_socket.display()))?,
        ),
        false => None,
    };
    let connectors = Arc::new(hoist::connectors::Live::new(
        &config.connector_settings(),
        hoist::connectors::Environment::new(std::env::vars()),
    )?);
    let stop = tokio_util::sync::CancellationToken::new();
    let service = cri::ImageService::new(
        puller,
        cri::Options {
            containerd,
            register: hoist::pull::register::Options {
                snapshotter: serve.snapshotter.clone(),
                ..Default::default()
            },
            connectors: Some(Arc::clone(&connectors)),
            pinned: config.pinned_images()?,
        },
    );
    tokio::spawn(
        connectors.watch(
            args.common
                .config
                .clone()
                .unwrap_or_else(|| hoist::config::DEFAULT_PATH.into()),
            std::time::Duration::from_secs(2),
            stop.clone().cancelled_owned(),
        ),
    );
    tokio::spawn({
        let stop = stop.clone();
        async move {
            hoist_snapshotter::service::shutdown_signal().await;
            stop.cancel();
        }
    });
    // One server failing stops the other.
    let (snapshots, images) = tokio::join!(
        async {
            let served = hoist_snapshotter::service::serve(
                store,
                &serve.snapshots_socket,
                stop.clone().cancelled_owned(),
            )
            .await;
            stop.cancel();
            served
        },
        async {
            let served =
                cri::serve(service, &serve.cri_socket, stop.clone().cancelled_owned()).await;
            stop.cancel();
            served
        },
    );
    snapshots.context("serving containerd's snapshots service")?;
    images.context("serving the CRI ImageService")?;
    Ok(())
}
