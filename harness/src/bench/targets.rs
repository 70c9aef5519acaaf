//! The targets of issue 6, checked against a report: each is met, missed, or not measured
//! (its scenario was not run), and the report says which, plainly.

use serde::Serialize;

use super::report::{CaseReport, SystemResult};

/// One target and what the run measured for it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is measured, e.g. `loopback-gzip, containerd-cri ÷ hoist-cri`.
    pub target: String,
    /// The bound, e.g. `≥ 5`.
    pub bound: String,
    /// What this run measured; `None` when its scenarios were not run.
    pub value: Option<f64>,
    /// Whether the value is within the bound; `None` when not measured.
    pub met: Option<bool>,
}

/// Peak RSS any Hoist process may reach, MiB.
const RSS_MIB: f64 = 200.0;

/// Checks every target against `cases`.
pub fn check(cases: &[CaseReport]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (scenario, at_least) in [
        ("loopback-gzip", 5.0),
        ("s3like-gzip", 8.0),
        ("s3like-zstd", 8.0),
    ] {
        let case = find(cases, scenario);
        let value = case.and_then(|c| ratio(system(c, "containerd-cri")?, hoist(c)?));
        checks.push(at_least_check(
            format!("{scenario}, containerd-cri ÷ Hoist"),
            value,
            at_least,
        ));
    }
    let loopback = find(cases, "loopback-gzip");
    let value = loopback.and_then(|c| ratio(hoist(c)?, system(c, "floor")?));
    checks.push(at_most_check(
        "loopback-gzip, Hoist ÷ floor".into(),
        value,
        1.3,
    ));
    let value = find(cases, "warm")
        .and_then(hoist)
        .map(|s| s.median_s * 1000.0);
    checks.push(at_most_check("warm, Hoist ms".into(), value, 50.0));
    let single = find(cases, "fanout@1").and_then(hoist);
    let many = find(cases, "fanout").and_then(hoist);
    let value = single.zip(many).and_then(|(one, ten)| ratio(ten, one));
    checks.push(at_most_check(
        "fanout, 10 pulls ÷ a single pull (Hoist)".into(),
        value,
        1.5,
    ));
    // `hoist pull` in `fanout` is ten processes with ten stores, its RSS their sum; `hoist-cri`
    // serves the ten from one process and is the one held to the bound there.
    let peak = cases
        .iter()
        .flat_map(|c| {
            let fanout = c.name == "fanout";
            c.systems
                .iter()
                .filter(move |s| !(fanout && s.system.starts_with("hoist-pull")))
        })
        .filter(|s| s.system.starts_with("hoist"))
        .map(|s| s.peak_rss_mib)
        .reduce(f64::max);
    checks.push(at_most_check(
        "Hoist peak RSS in any case, MiB".into(),
        peak,
        RSS_MIB,
    ));
    checks
}

fn at_least_check(target: String, value: Option<f64>, bound: f64) -> Check {
    Check {
        target,
        bound: format!("≥ {bound}"),
        met: value.map(|v| v >= bound),
        value,
    }
}

fn at_most_check(target: String, value: Option<f64>, bound: f64) -> Check {
    Check {
        target,
        bound: format!("≤ {bound}"),
        met: value.map(|v| v <= bound),
        value,
    }
}

fn find<'a>(cases: &'a [CaseReport], name: &str) -> Option<&'a CaseReport> {
    cases.iter().find(|c| c.name == name)
}

fn system<'a>(case: &'a CaseReport, name: &str) -> Option<&'a SystemResult> {
    case.systems.iter().find(|s| s.system == name)
}

/// The case's reference Hoist (the CRI path when it ran, else `hoist pull`).
fn hoist(case: &CaseReport) -> Option<&SystemResult> {
    case.reference
        .as_deref()
        .and_then(|name| system(case, name))
}

fn ratio(a: &SystemResult, b: &SystemResult) -> Option<f64> {
    (b.median_s > 0.0).then(|| a.median_s / b.median_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::measure::Cost;

    fn case(name: &str, systems: &[(&str, f64, f64)]) -> CaseReport {
        let mut case = CaseReport {
            name: name.to_owned(),
            scenario: name.split('@').next().unwrap_or(name).to_owned(),
            description: String::new(),
            content_bytes: 1,
            compressed_bytes: 1,
            layers: 1,
            reference: None,
            best_hoist: None,
            systems: systems
                .iter()
                .map(|(system, wall_s, peak_rss_mib)| {
                    SystemResult::new(
                        (*system).to_owned(),
                        vec![Cost {
                            wall_s: *wall_s,
                            cpu_s: 0.0,
                            peak_rss_mib: *peak_rss_mib,
                        }],
                    )
                })
                .collect(),
        };
        case.conclude(Some("hoist-cri".to_owned()));
        case
    }

    #[test]
    fn each_target_is_met_missed_or_not_measured() {
        let cases = vec![
            case(
                "loopback-gzip",
                &[
                    ("hoist-cri", 2.0, 90.0),
                    ("containerd-cri", 12.0, 50.0),
                    ("floor", 1.9, 20.0),
                ],
            ),
            case(
                "s3like-gzip",
                &[("hoist-cri", 4.0, 250.0), ("containerd-cri", 30.0, 50.0)],
            ),
            case("warm", &[("hoist-cri", 0.04, 10.0)]),
            case("fanout@1", &[("hoist-cri", 1.0, 10.0)]),
            case(
                "fanout",
                &[("hoist-cri", 1.6, 10.0), ("hoist-pull", 3.0, 470.0)],
            ),
        ];
        let checks = check(&cases);
        let by_target = |prefix: &str| {
            checks
                .iter()
                .find(|c| c.target.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}"))
        };
        let loopback = by_target("loopback-gzip, containerd");
        assert_eq!((loopback.value, loopback.met), (Some(6.0), Some(true)));
        let s3 = by_target("s3like-gzip");
        assert_eq!((s3.value, s3.met), (Some(7.5), Some(false)));
        let zstd = by_target("s3like-zstd");
        assert_eq!((zstd.value, zstd.met), (None, None));
        let floor = by_target("loopback-gzip, Hoist");
        assert_eq!(floor.met, Some(true));
        assert_eq!(by_target("warm").met, Some(true));
        let fanout = by_target("fanout");
        assert_eq!(fanout.met, Some(false));
        assert!((fanout.value.unwrap() - 1.6).abs() < 1e-9);
        let rss = by_target("Hoist peak RSS");
        assert_eq!((rss.value, rss.met), (Some(250.0), Some(false)));
    }
}
