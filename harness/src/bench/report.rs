//! Results: per case and system the median, min and max wall time, peak RSS and CPU seconds,
//! the ratio of each median to Hoist's, the winner of a settings sweep, and the machine. Written
//! as JSON, as a Markdown table, and as an SVG plot of pull time against image size.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::Cost;

/// Everything one `hoist-bench run` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Where the stores lived: `tmpfs` (a fresh one per measurement) or `disk`.
    pub stores: String,
    /// Runs per system and case.
    pub runs: usize,
    /// Image sizes relative to the issue's (1 = as specified).
    pub scale: f64,
    /// One entry per case, in the order run.
    pub scenarios: Vec<CaseReport>,
    /// Issue 6's targets against these numbers.
    pub targets: Vec<super::targets::Check>,
}

/// The machine a report was taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// CPUs available to the process.
    pub cores: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_at_start: f64,
    /// How containerd decompresses gzip layers here: `unpigz` when it is on the `PATH`
    /// containerd inherits and `CONTAINERD_DISABLE_PIGZ` is unset, else Go's `compress/gzip`.
    /// It changes containerd's time on gzip images by a fifth or more.
    pub containerd_gzip: String,
}

impl Machine {
    /// This machine, read from `/proc` and `uname`.
    pub fn here() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let load_at_start = read("/proc/loadavg")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_at_start,
            containerd_gzip: containerd_gzip(
                std::env::var_os("PATH").as_deref(),
                std::env::var_os("CONTAINERD_DISABLE_PIGZ").is_some(),
            )
            .to_owned(),
        }
    }

    /// One line for tables.
    pub fn describe(&self) -> String {
        format!(
            "{} cores of {}, {} MiB RAM, Linux {}, load {:.1} at start; containerd's gzip: {}",
            self.cores,
            self.cpu,
            self.memory_mib,
            self.kernel,
            self.load_at_start,
            self.containerd_gzip
        )
    }
}

/// containerd's gzip decompressor given its `PATH` and whether `CONTAINERD_DISABLE_PIGZ` is set:
/// it runs `unpigz` when it finds one.
fn containerd_gzip(path: Option<&std::ffi::OsStr>, disabled: bool) -> &'static str {
    use std::os::unix::fs::PermissionsExt;
    let found = path.is_some_and(|path| {
        std::env::split_paths(path).any(|dir| {
            std::fs::metadata(dir.join("unpigz"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if found && !disabled {
        "unpigz"
    } else {
        "Go compress/gzip"
    }
}

/// One case (a scenario, or one size of `scale`).
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// `loopback-gzip`, `scale@500MB`.
    pub name: String,
    /// The scenario.
    pub scenario: String,
    /// What it is.
    pub description: String,
    /// Uncompressed file content of the image, bytes.
    pub content_bytes: u64,
    /// Layer blobs as pushed, bytes.
    pub compressed_bytes: u64,
    /// Layers.
    pub layers: usize,
    /// The system whose median the ratios divide by.
    pub reference: Option<String>,
    /// The fastest Hoist variant when settings were swept.
    pub best_hoist: Option<String>,
    /// Per system, in the order run.
    pub systems: Vec<SystemResult>,
}

/// One system's numbers in one case.
#[derive(Debug, Clone, Serialize)]
pub struct SystemResult {
    /// `hoist-pull`, `ctr-pull`, `skopeo`, `floor`, `hoist-pull[chunk_size=…]`.
    pub system: String,
    /// Median wall time, seconds.
    pub median_s: f64,
    /// Fastest run.
    pub min_s: f64,
    /// Slowest run.
    pub max_s: f64,
    /// Largest peak RSS of the runs, MiB.
    pub peak_rss_mib: f64,
    /// Median CPU seconds.
    pub cpu_s: f64,
    /// This median ÷ the reference's median.
    pub ratio_to_hoist: Option<f64>,
    /// Every run.
    pub runs: Vec<Cost>,
}

impl SystemResult {
    /// Summarises `runs` (at least one).
    pub fn new(system: String, runs: Vec<Cost>) -> SystemResult {
        let walls: Vec<f64> = runs.iter().map(|c| c.wall_s).collect();
        let cpus: Vec<f64> = runs.iter().map(|c| c.cpu_s).collect();
        SystemResult {
            system,
            median_s: median(&walls),
            min_s: walls.iter().copied().fold(f64::INFINITY, f64::min),
            max_s: walls.iter().copied().fold(0.0, f64::max),
            peak_rss_mib: runs.iter().map(|c| c.peak_rss_mib).fold(0.0, f64::max),
            cpu_s: median(&cpus),
            ratio_to_hoist: None,
            runs,
        }
    }
}

impl CaseReport {
    /// Fills in the ratios to `reference` and the best Hoist variant.
    pub fn conclude(&mut self, reference: Option<String>) {
        let base = reference
            .as_ref()
            .and_then(|r| self.systems.iter().find(|s| &s.system == r))
            .map(|s| s.median_s);
        for system in &mut self.systems {
            system.ratio_to_hoist = base.filter(|b| *b > 0.0).map(|b| system.median_s / b);
        }
        // Only variants of a sweep (`hoist-pull[...]`, `hoist-cri[...]`) compete.
        let hoists: Vec<&SystemResult> = self
            .systems
            .iter()
            .filter(|s| s.system.starts_with("hoist") && s.system.contains('['))
            .collect();
        if hoists.len() > 1 {
            self.best_hoist = hoists
                .iter()
                .min_by(|a, b| a.median_s.total_cmp(&b.median_s))
                .map(|s| s.system.clone());
        }
        self.reference = reference;
    }
}

/// The median (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The report as Markdown: one table per case, a person can paste it.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Machine: {}. {} run(s) per system, alternating; stores on {}; image sizes × {}.\n",
        report.machine.describe(),
        report.runs,
        report.stores,
        report.scale
    );
    if !report.targets.is_empty() {
        let _ = writeln!(
            out,
            "| target | bound | this run | met |\n|---|---|---:|---|"
        );
        for check in &report.targets {
            let (value, met) = match (check.value, check.met) {
                (Some(v), Some(true)) => (format!("{v:.2}"), "yes"),
                (Some(v), _) => (format!("{v:.2}"), "**NOT MET**"),
                _ => ("—".to_owned(), "not measured"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {value} | {met} |",
                check.target, check.bound
            );
        }
        let _ = writeln!(out);
    }
    for case in &report.scenarios {
        let _ = writeln!(
            out,
            "**{}**: {} ({:.0} MB content, {:.0} MB compressed, {} layers)\n",
            case.name,
            case.description,
            case.content_bytes as f64 / 1e6,
            case.compressed_bytes as f64 / 1e6,
            case.layers
        );
        let _ = writeln!(
            out,
            "| system | median s | min s | max s | peak RSS MiB | CPU s | ÷ {} |",
            case.reference.as_deref().unwrap_or("Hoist")
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for s in &case.systems {
            let ratio = s
                .ratio_to_hoist
                .map_or("–".to_owned(), |r| format!("{r:.2}"));
            let _ = writeln!(
                out,
                "| {} | {:.3} | {:.3} | {:.3} | {:.0} | {:.2} | {} |",
                s.system, s.median_s, s.min_s, s.max_s, s.peak_rss_mib, s.cpu_s, ratio
            );
        }
        if let Some(best) = &case.best_hoist {
            let _ = writeln!(out, "\nFastest Hoist setting: `{best}`.");
        }
        out.push('\n');
    }
    out
}

/// Pull time against compressed image size, one line per system, as a standalone SVG.
pub fn svg(report: &Report) -> String {
    let (width, height, left, bottom, top, right) = (720.0, 440.0, 60.0, 50.0, 20.0, 170.0);
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for case in &report.scenarios {
        for s in &case.systems {
            let point = (case.compressed_bytes as f64 / 1e6, s.median_s);
            match series.iter_mut().find(|(name, _)| *name == s.system) {
                Some((_, points)) => points.push(point),
                None => series.push((s.system.clone(), vec![point])),
            }
        }
    }
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.001, f64::max);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let x = |v: f64| left + v / max_x * plot_w;
    let y = |v: f64| top + plot_h - v / max_y * plot_h;
    let colors = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<path d="M{left},{top} V{} H{}" fill="none" stroke="black"/>"#,
        top + plot_h,
        left + plot_w
    );
    for i in 0..=4 {
        let (vx, vy) = (max_x * f64::from(i) / 4.0, max_y * f64::from(i) / 4.0);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{vx:.0}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{vy:.1}</text>"#,
            x(vx),
            top + plot_h + 16.0,
            left - 6.0,
            y(vy) + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">compressed image size, MB</text>"#,
        left + plot_w / 2.0,
        height - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">median pull time, s</text>"#,
        top + plot_h / 2.0
    );
    for (i, (name, points)) in series.iter_mut().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = colors[i % colors.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (px, py) in points.iter() {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(*px),
                y(*py)
            );
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + plot_w + 14.0,
            ly - 4.0,
            left + plot_w + 32.0,
            ly,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(wall_s: f64) -> Cost {
        Cost {
            wall_s,
            peak_rss_mib: 10.0,
            cpu_s: 1.0,
        }
    }

    #[test]
    fn ratios_medians_and_the_best_setting() {
        let mut case = CaseReport {
            name: "loopback-gzip".to_owned(),
            scenario: "loopback-gzip".to_owned(),
            description: "d".to_owned(),
            content_bytes: 1,
            compressed_bytes: 2_000_000,
            layers: 3,
            reference: None,
            best_hoist: None,
            systems: vec![
                SystemResult::new(
                    "hoist-pull".to_owned(),
                    vec![cost(2.0), cost(1.0), cost(9.0)],
                ),
                SystemResult::new("hoist-pull[x=1]".to_owned(), vec![cost(1.5)]),
                SystemResult::new("hoist-pull[x=2]".to_owned(), vec![cost(1.7)]),
                SystemResult::new("ctr-pull".to_owned(), vec![cost(8.0), cost(12.0)]),
            ],
        };
        case.conclude(Some("hoist-pull".to_owned()));
        assert_eq!(case.systems[0].median_s, 2.0);
        assert_eq!(case.systems[0].min_s, 1.0);
        assert_eq!(case.systems[0].max_s, 9.0);
        assert_eq!(case.systems[3].ratio_to_hoist, Some(5.0));
        assert_eq!(case.best_hoist.as_deref(), Some("hoist-pull[x=1]"));
        let report = Report {
            machine: Machine::here(),
            stores: "tmpfs".to_owned(),
            runs: 3,
            scale: 1.0,
            targets: super::super::targets::check(std::slice::from_ref(&case)),
            scenarios: vec![case],
        };
        let table = markdown(&report);
        assert!(
            table.contains("| ctr-pull | 10.000 | 8.000 | 12.000 | 10 | 1.00 | 5.00 |"),
            "{table}"
        );
        let plot = svg(&report);
        assert!(plot.starts_with("<svg") && plot.contains("polyline") && plot.contains("ctr-pull"));
    }

    #[test]
    fn containerd_gzip_is_unpigz_only_when_an_executable_one_is_on_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let empty = tempfile::tempdir().unwrap();
        let with = tempfile::tempdir().unwrap();
        let unpigz = with.path().join("unpigz");
        std::fs::write(&unpigz, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([empty.path(), with.path()]).unwrap();
        let none = std::env::join_paths([empty.path()]).unwrap();
        std::fs::set_permissions(&unpigz, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(containerd_gzip(Some(&path), false), "Go compress/gzip");
        std::fs::set_permissions(&unpigz, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(containerd_gzip(Some(&path), false), "unpigz");
        assert_eq!(containerd_gzip(Some(&path), true), "Go compress/gzip");
        assert_eq!(containerd_gzip(Some(&none), false), "Go compress/gzip");
        assert_eq!(containerd_gzip(None, false), "Go compress/gzip");
    }
}
