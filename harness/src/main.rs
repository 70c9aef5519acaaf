//! `hoist-bench`: the harness's command line. Thin: each subcommand maps flags onto the library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hoist_harness::image::{self, Compression, Generated, MediaTypes, Mix};

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
    let image = generated.image().with_media_types(media_types);
    let written = image::layout::write(&image, &args.out, &args.reference, &options)
        .with_context(|| format!("writing image layout {}", args.out.display()))?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &written).context("printing the digests")?;
    writeln!(stdout).context("printing the digests")?;
    Ok(())
}
