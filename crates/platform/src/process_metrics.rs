//! What every binary exports about itself: the process's CPU time (to the clock tick, not whole
//! seconds), memory, open files and start time (from /proc, on Linux), and
//! `orchestrator_build_info{version, commit}` set to 1.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, IntGaugeVec, Opts, Registry};

/// The version and commit the binary was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("ORCHESTRATOR_COMMIT");

/// The name of the process's CPU time, as Prometheus' client libraries export it.
const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// Adds the process metrics and the build's series to `registry`.
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(ProcessMetrics::new()?))?;
    let info = IntGaugeVec::new(
        Opts::new(
            "orchestrator_build_info",
            "The version and commit this binary was built from (always 1).",
        ),
        &["version", "commit"],
    )?;
    info.with_label_values(&[VERSION, COMMIT]).set(1);
    registry.register(Box::new(info))?;
    registry.register(Box::new(crate::http_server::connections_refused()?))
}

/// The `prometheus` crate's process collector, whose `process_cpu_seconds_total` counts whole
/// seconds only (a service that used 0.9 s reads 0), with that series replaced by one in
/// seconds to the clock tick (10 ms).
#[cfg(target_os = "linux")]
struct ProcessMetrics {
    others: prometheus::process_collector::ProcessCollector,
    cpu: Counter,
    descs: Vec<Desc>,
}

#[cfg(target_os = "linux")]
impl ProcessMetrics {
    fn new() -> Result<ProcessMetrics, prometheus::Error> {
        let others = prometheus::process_collector::ProcessCollector::for_self();
        let cpu = Counter::with_opts(Opts::new(
            CPU_SECONDS,
            "Total user and system CPU time spent in seconds.",
        ))?;
        let descs = others
            .desc()
            .into_iter()
            .filter(|d| d.fq_name != CPU_SECONDS)
            .chain(cpu.desc())
            .cloned()
            .collect();
        Ok(ProcessMetrics { others, cpu, descs })
    }
}

#[cfg(target_os = "linux")]
impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(seconds) = cpu_seconds() {
            // A counter never goes back: add what was used since the last scrape.
            let past = self.cpu.get();
            if seconds > past {
                self.cpu.inc_by(seconds - past);
            }
        }
        let mut families: Vec<MetricFamily> = self
            .others
            .collect()
            .into_iter()
            .filter(|f| f.name() != CPU_SECONDS)
            .collect();
        families.extend(self.cpu.collect());
        families
    }
}

/// The process's user and system CPU time, in seconds to the clock tick.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    Some((stat.utime + stat.stime) as f64 / ticks)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn cpu_time_is_exported_below_the_second() {
        let registry = Registry::new();
        register(&registry).unwrap_or_else(|e| panic!("{e}"));
        // Burn a little CPU (well under a second), then read it back.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(150) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("process_cpu_seconds_total "))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let cpu: f64 = lines[0]
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert!(cpu > 0.0 && cpu.fract() != 0.0, "{cpu}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
