//! Progress bars for the command line: one per layer being fetched and one overall, fed by
//! the puller's [`Event`]s. Drawn on stderr only when it is a terminal.

use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pull::{Event, Observer};

/// Terminal progress bars for one pull.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    overall: Option<ProgressBar>,
    layers: Vec<Option<ProgressBar>>,
}

impl Bars {
    /// Bars drawn on stderr, or nothing if `hidden`.
    pub fn new(hidden: bool) -> Bars {
        let target = if hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            state: Mutex::new(State::default()),
        }
    }

    /// Removes the bars from the terminal.
    pub fn finish(&self) {
        let state = self.state.lock().expect("progress lock is never poisoned");
        if let Some(overall) = &state.overall {
            overall.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress templates are constants")
        .progress_chars("=> ")
}

impl Observer for Bars {
    fn on(&self, event: Event<'_>) {
        let mut state = self.state.lock().expect("progress lock is never poisoned");
        match event {
            Event::Planned { plan, present } => {
                let total: u64 = plan
                    .layers
                    .iter()
                    .zip(present)
                    .filter(|(_, p)| !**p)
                    .map(|(l, _)| l.size)
                    .sum();
                let overall = self.multi.add(ProgressBar::new(total));
                overall.set_style(style(
                    "{msg:>20} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {elapsed}",
                ));
                overall.set_message("total");
                state.overall = Some(overall);
                state.layers = plan
                    .layers
                    .iter()
                    .zip(present)
                    .map(|(layer, present)| {
                        if *present {
                            return None;
                        }
                        let bar = self.multi.add(ProgressBar::new(layer.size));
                        bar.set_style(style("{msg:>20} [{bar:30}] {bytes:>10}/{total_bytes:<10}"));
                        bar.set_message(layer.blob.hex()[..12].to_owned());
                        Some(bar)
                    })
                    .collect();
            }
            Event::Fetched { layer, bytes } => {
                if let Some(Some(bar)) = state.layers.get(layer) {
                    bar.inc(bytes);
                }
                if let Some(overall) = &state.overall {
                    overall.inc(bytes);
                }
            }
            Event::Committed { layer } => {
                if let Some(Some(bar)) = state.layers.get(layer) {
                    bar.finish_with_message(format!(
                        "{} done",
                        &bar.message()[..12.min(bar.message().len())]
                    ));
                }
            }
        }
    }
}
