//! The run's progress on stderr: one bar per zone on a terminal, plain lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orchestrator_engine::ProgressView;
use orchestrator_protocol::Zone;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::sync::watch;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, lines otherwise.
    Auto,
    Bars,
    Lines,
    None,
}

/// Follows `view` until the runs finish (or the sender goes away).
pub async fn show(mut view: watch::Receiver<ProgressView>, mode: ProgressMode) {
    let mode = match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bars,
        ProgressMode::Auto => ProgressMode::Lines,
        m => m,
    };
    match mode {
        ProgressMode::Bars => bars(&mut view).await,
        ProgressMode::Lines => lines(&mut view).await,
        _ => while view.changed().await.is_ok() && !view.borrow().finished {},
    }
}

async fn bars(view: &mut watch::Receiver<ProgressView>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let style = ProgressStyle::with_template("{prefix:>15} [{bar:40.cyan/blue}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = Zone::ALL
        .iter()
        .map(|z| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(z.as_str());
            b
        })
        .collect();
    loop {
        let v = view.borrow_and_update().clone();
        for (i, b) in bars.iter().enumerate() {
            b.set_length(v.zones[i].1 as u64);
            b.set_position(v.zones[i].0 as u64);
            b.set_message(format!("in flight {}", v.in_flight[i]));
        }
        if v.finished || view.changed().await.is_err() {
            break;
        }
    }
    for b in bars {
        b.finish();
    }
}

async fn lines(view: &mut watch::Receiver<ProgressView>) {
    let mut last = String::new();
    let mut printed = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let v = view.borrow_and_update().clone();
        let line = Zone::ALL
            .iter()
            .map(|z| format!("{} {}/{}", z, v.zones[z.index()].0, v.zones[z.index()].1))
            .collect::<Vec<_>>()
            .join(", ");
        // At most one line a second, and always the last one.
        if line != last && (v.finished || printed.elapsed() >= Duration::from_secs(1)) {
            eprintln!("progress: {line}");
            last = line;
            printed = std::time::Instant::now();
        }
        if v.finished {
            break;
        }
        tokio::select! {
            changed = view.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
