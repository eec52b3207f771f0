//! The process's own metrics, read from `/proc/self` at each scrape (Linux). The families are
//! those every Prometheus client library's process collector exports (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), so dashboards and alerts written for them work as they
//! are. `prometheus-client` has no such collector; elsewhere than Linux the families are absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The collector registered in every scrape's registry.
#[derive(Debug, Default)]
pub struct Process;

/// What one read of `/proc/self` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    /// Unix time the process started, in seconds.
    pub start_time_seconds: f64,
    pub open_fds: u64,
    /// The soft limit on open files (`None`: unlimited).
    pub max_fds: Option<u64>,
}

/// The fields of `/proc/<pid>/stat` this collector reads, in clock ticks and pages as the
/// kernel counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub utime: u64,
    pub stime: u64,
    /// Ticks after boot at which the process started.
    pub starttime: u64,
    pub vsize: u64,
    /// Resident pages.
    pub rss: u64,
}

/// Reads `/proc/<pid>/stat`'s text. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so the fields are counted from the last `)`; the numbers are
/// proc(5)'s fields 14, 15, 22, 23 and 24.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat`'s text.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

impl Sample {
    /// Reads `/proc/self`; `None` where there is no procfs.
    pub fn read() -> Option<Sample> {
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
        // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        let page = if page > 0 { page as u64 } else { 4096 };
        // The directory listing itself holds one descriptor while it is read: not counted.
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1) as u64;
        Some(Sample {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss * page,
            virtual_bytes: stat.vsize,
            start_time_seconds: boot as f64 + stat.starttime as f64 / ticks,
            open_fds,
            max_fds: max_fds(),
        })
    }
}

fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which lives for the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(s) = Sample::read() else {
            return Ok(());
        };
        ConstCounter::new(s.cpu_seconds).encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent, in seconds.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?)?;
        for (name, help, unit, value) in [
            (
                "process_resident_memory",
                "Resident memory size, in bytes.",
                Some(Unit::Bytes),
                s.resident_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size, in bytes.",
                Some(Unit::Bytes),
                s.virtual_bytes as f64,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch, in seconds.",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors.",
                None,
                s.open_fds as f64,
            ),
        ]
        .into_iter()
        .chain(s.max_fds.map(|m| {
            (
                "process_max_fds",
                "The soft limit on open file descriptors.",
                None,
                m as f64,
            )
        })) {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and a parenthesis does not shift the fields.
    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (mer idian) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 75,
                starttime: 123456,
                vsize: 987654321,
                rss: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (truncated) S 1 2"), None);
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1764000000\nprocesses 9\n"),
            Some(1764000000)
        );
    }

    /// The running test process reads as a process that started in the past and holds memory.
    #[test]
    fn this_process_reads() {
        let s = Sample::read().expect("procfs");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            s.start_time_seconds > now - 3600.0 && s.start_time_seconds <= now + 1.0,
            "{s:?}"
        );
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.cpu_seconds >= 0.0, "{s:?}");
    }
}
