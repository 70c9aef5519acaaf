//! `hoist-bench`: the harness's command line. Thin: each subcommand maps flags onto the library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hoist_harness::bench;
use hoist_harness::image::{self, Compression, Generated, MediaTypes, Mix};
use hoist_harness::programs::Program;

#[derive(Debug, Parser)]
#[command(name = "hoist-bench", about = "Hoist's benchmark and test harness")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Write a generated image as an OCI image layout and print its digests as JSON.
    Image(ImageArgs),
    /// Run named scenarios against Hoist, containerd, skopeo and the floor, and report.
    Run(RunArgs),
    /// Serve the shaping proxy in front of a registry until interrupted, to try a link by hand.
    Proxy(ProxyArgs),
    /// The floor of one image: its layer blobs from an OCI layout on local disk, verified,
    /// decoded and unpacked with Hoist's stages on all cores (run by `run` as a child).
    Floor(FloorArgs),
    /// Kubelet's calls, by hand: pull through a CRI ImageService, or run an image in a pod.
    #[command(subcommand)]
    Cri(CriCommands),
}

#[derive(Debug, Subcommand)]
enum CriCommands {
    /// PullImage on a CRI socket (Hoist's or containerd's); prints the image ID and seconds.
    Pull {
        /// The CRI socket.
        #[arg(long)]
        socket: PathBuf,
        /// The image.
        image: String,
    },
    /// Runs an image once in a new host-network pod through a runtime's CRI (containerd's), as
    /// kubelet would, and prints what the container wrote; exits non-zero if it did.
    Run {
        /// The runtime's CRI socket.
        #[arg(long)]
        socket: PathBuf,
        /// The image's ID (as kubelet names it to the runtime).
        #[arg(long)]
        id: String,
        /// The image as the pod spec names it (`user_specified_image`).
        #[arg(long)]
        tag: String,
        /// The pod's log directory (created).
        #[arg(long)]
        logs: PathBuf,
        /// Arguments to the image's entrypoint.
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenarios: loopback-gzip, s3like-gzip, s3like-zstd, many-layers, warm, fanout, scale.
    #[arg(required = true)]
    scenarios: Vec<String>,
    /// Measurements per system and scenario, alternating systems.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the report as a Markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write an SVG plot of pull time against image size here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// A Hoist pull setting, KEY=VALUE or KEY=V1,V2,... to sweep (repeatable; every
    /// combination runs): chunk_size=1MiB,4MiB, chunks_in_flight=4, layers_in_parallel=3, ...
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Image sizes relative to the scenarios' (0.01 for a quick check).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Only these systems (hoist-pull, ctr-pull, skopeo, floor; comma-separated).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Work directory, created (registry storage, images, stores). Default: a new one under
    /// /tmp, removed afterwards. Keep it short: containerd's socket lives below it.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The hoist binary. Default: `hoist` beside this program, else from PATH.
    #[arg(long)]
    hoist: Option<PathBuf>,
    /// Give every measurement a fresh tmpfs for its stores (needs root), so that no pull waits
    /// on the disk's writeback of an earlier one.
    #[arg(long)]
    tmpfs: bool,
}

#[derive(Debug, clap::Args)]
struct ProxyArgs {
    /// The registry to forward to, HOST:PORT.
    #[arg(long)]
    upstream: std::net::SocketAddr,
    /// Bytes per second per client connection (30MB for an S3-like link); none when absent.
    #[arg(long, value_parser = parse_size)]
    per_connection: Option<u64>,
    /// Bytes per second for all connections together; none when absent.
    #[arg(long, value_parser = parse_size)]
    link: Option<u64>,
    /// Milliseconds before each request is forwarded.
    #[arg(long, default_value_t = 0)]
    first_byte_ms: u64,
    /// Client connections served at once.
    #[arg(long)]
    max_connections: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct FloorArgs {
    /// OCI image layout holding the image.
    #[arg(long)]
    layout: PathBuf,
    /// Directory to unpack the layers into (one subdirectory per layer).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ImageArgs {
    /// Layout directory to write (created if missing; other references in it are kept).
    #[arg(long)]
    out: PathBuf,
    /// Seed: the same seed and options give the same bytes and digests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Total file content, uncompressed: 64MiB, 1GiB, 500MB, ...
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Number of layers.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Many small files or a few large ones.
    #[arg(long, value_enum, default_value_t = MixArg::Small)]
    mix: MixArg,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
    /// Manifest, config and layer media types.
    #[arg(long, value_enum, default_value_t = MediaTypesArg::Oci)]
    media_types: MediaTypesArg,
    /// Name of the image in index.json (org.opencontainers.image.ref.name).
    #[arg(long, default_value = "latest")]
    reference: String,
    /// Also put this static program (built with gcc) at /NAME in a layer of its own on top, as
    /// the image's entrypoint: `pause` (a sandbox image, with --layers 0) or `echo`.
    #[arg(long, value_enum)]
    program: Option<ProgramArg>,
    /// gzip level, 0-9.
    #[arg(long, default_value_t = 6)]
    gzip_level: u32,
    /// zstd level, 1-22.
    #[arg(long, default_value_t = 3)]
    zstd_level: i32,
    /// Layers written in parallel; default: number of CPUs.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MixArg {
    Small,
    Large,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgramArg {
    Pause,
    Echo,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MediaTypesArg {
    Oci,
    Docker,
}

fn parse_size(text: &str) -> Result<u64, String> {
    image::parse_size(text).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Commands::Image(args) => write_image(args),
        Commands::Run(args) => run(args),
        Commands::Proxy(args) => proxy(args),
        Commands::Floor(args) => floor(args),
        Commands::Cri(command) => cri(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with the causes chained, as STYLE.md asks of binaries.
            let _ = writeln!(std::io::stderr(), "hoist-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_image(args: ImageArgs) -> anyhow::Result<()> {
    let generated = Generated {
        seed: args.seed,
        total_size: args.size,
        layers: args.layers,
        mix: match args.mix {
            MixArg::Small => Mix::SmallFiles,
            MixArg::Large => Mix::LargeFiles,
        },
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
    };
    let media_types = match args.media_types {
        MediaTypesArg::Oci => MediaTypes::Oci,
        MediaTypesArg::Docker => MediaTypes::Docker,
    };
    let mut options = image::Options {
        gzip_level: args.gzip_level,
        zstd_level: args.zstd_level,
        ..image::Options::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads;
    }
    let mut image = if args.layers == 0 {
        image::Image::new(Vec::new())
    } else {
        generated.image()
    };
    if let Some(program) = args.program {
        let program = match program {
            ProgramArg::Pause => Program::Pause,
            ProgramArg::Echo => Program::Echo,
        };
        let build = tempfile::tempdir().context("a directory to build the program in")?;
        program
            .add_to(&mut image, build.path())
            .with_context(|| format!("building {}", program.name()))?;
    }
    let image = image.with_media_types(media_types);
    let written = image::layout::write(&image, &args.out, &args.reference, &options)
        .with_context(|| format!("writing image layout {}", args.out.display()))?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &written).context("printing the digests")?;
    writeln!(stdout).context("printing the digests")?;
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = args
        .settings
        .iter()
        .map(|s| s.parse::<bench::Setting>())
        .collect::<Result<Vec<_>, _>>()?;
    let bench_exe = std::env::current_exe().context("finding this program")?;
    let hoist = args.hoist.unwrap_or_else(|| {
        let beside = bench_exe.with_file_name("hoist");
        if beside.is_file() {
            beside
        } else {
            PathBuf::from("hoist")
        }
    });
    let temporary = match &args.work_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("hb.")
                .tempdir_in("/tmp")
                .context("creating a work directory")?,
        ),
    };
    let work_dir = match (&args.work_dir, &temporary) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => unreachable!("a temporary directory is made when none is given"),
    };
    let options = bench::Options {
        scenarios: args.scenarios,
        runs: args.runs.max(1),
        scale: args.scale,
        settings,
        systems: args.systems,
        work_dir,
        hoist,
        bench: bench_exe,
        tmpfs: args.tmpfs,
    };
    let mut log = |line: &str| {
        let _ = writeln!(std::io::stderr(), "[hoist-bench] {line}");
    };
    let report = bench::run(&options, &mut log)?;
    let markdown = bench::report::markdown(&report);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        bench::write_file(path, &json)?;
    }
    if let Some(path) = &args.markdown {
        bench::write_file(path, &markdown)?;
    }
    if let Some(path) = &args.svg {
        bench::write_file(path, &bench::report::svg(&report))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(markdown.as_bytes())
        .context("printing the report")?;
    Ok(())
}

fn floor(args: FloorArgs) -> anyhow::Result<()> {
    let bytes = bench::floor::run(&args.layout, &args.out)
        .with_context(|| format!("floor of {}", args.layout.display()))?;
    writeln!(std::io::stdout(), "{{\"unpacked_bytes\":{bytes}}}").context("printing")?;
    Ok(())
}

fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let shaping = hoist_harness::proxy::Shaping {
        per_connection: args.per_connection,
        link: args.link,
        first_byte: std::time::Duration::from_millis(args.first_byte_ms),
        max_connections: args.max_connections,
    };
    let proxy =
        hoist_harness::proxy::Proxy::start(args.upstream, shaping).context("starting the proxy")?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", proxy.host()).context("writing the proxy's address")?;
    out.flush().context("writing the proxy's address")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing a SIGTERM handler")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for SIGINT"),
            _ = term.recv() => Ok(()),
        }
    })
}

fn cri(command: CriCommands) -> anyhow::Result<()> {
    use hoist_harness::cri::{Cri, PullContext, Runtime, pod};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    match command {
        CriCommands::Pull { socket, image } => runtime.block_on(async {
            let cri = Cri::connect(&socket).await?;
            let started = std::time::Instant::now();
            let id = cri.pull(&image, &PullContext::default()).await?;
            let seconds = started.elapsed().as_secs_f64();
            writeln!(stdout, "{id} {seconds:.3}").context("printing the result")
        }),
        CriCommands::Run {
            socket,
            id,
            tag,
            logs,
            args,
        } => runtime.block_on(async {
            std::fs::create_dir_all(&logs)
                .with_context(|| format!("creating {}", logs.display()))?;
            let cri = Runtime::connect(&socket).await?;
            let within = std::time::Duration::from_secs(120);
            let ran = pod::run_once(&cri, &id, &tag, &args, &logs, within).await?;
            for (stream, text) in &ran.log {
                writeln!(stdout, "{stream}: {text}").context("printing the log")?;
            }
            anyhow::ensure!(ran.exit_code == 0, "the container exited {}", ran.exit_code);
            Ok(())
        }),
    }
}
