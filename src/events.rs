//! Transitions worth telling an operator about, kept in a bounded in-memory log and sent to
//! subscribers (the admin API's event stream) as they happen.

use crate::lock::LockExt;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::broadcast;

/// One transition: what changed, from what to what, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: one more than the event before. The first event of a run is
    /// numbered from the microseconds since the Unix epoch at the start, so numbers usually
    /// rise across restarts. When they do not (the host's clock was set back), a reader asking
    /// for events after a number this run never gave gets every event held (see [`Events::after`]),
    /// so no reader misses the new run's events.
    pub seq: u64,
    pub time: SystemTime,
    /// Like `endpoint eu-west/198.51.100.10`, `datacenter eu-west`, `partition-guard`.
    pub subject: String,
    pub old: String,
    pub new: String,
    pub reason: String,
}

/// What an event is about, for readers that want one kind: health (probe targets, data
/// centers, the partition guard, cluster nodes), overrides (states and weights set by an
/// operator), or edits (zones, reloads, changes read from the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Health,
    Overrides,
    Edits,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Health => "health",
            Kind::Overrides => "overrides",
            Kind::Edits => "edits",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Health, Kind::Overrides, Kind::Edits]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

impl Event {
    /// The kind, from the subject's first word (the subjects `emit` is given).
    pub fn kind(&self) -> Kind {
        match self.subject.split(' ').next().unwrap_or_default() {
            "target" | "datacenter" | "partition-guard" | "node" => Kind::Health,
            "override" | "weight" => Kind::Overrides,
            _ => Kind::Edits,
        }
    }
}

/// The event log. The mutex guards a short push or copy, never held across an await.
#[derive(Debug)]
pub struct Events {
    /// The log, and the number the next event takes.
    log: Mutex<(VecDeque<Event>, u64)>,
    /// The number of this run's first event: no event of this run is numbered below it.
    start: u64,
    capacity: usize,
    tx: broadcast::Sender<Event>,
}

impl Events {
    /// A log keeping the last `capacity` events.
    pub fn new(capacity: usize) -> Events {
        let (tx, _) = broadcast::channel(1024);
        let first = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Events {
            log: Mutex::new((VecDeque::with_capacity(capacity), first)),
            start: first,
            capacity,
            tx,
        }
    }

    /// Records an event, logs it, and sends it to subscribers.
    pub fn emit(
        &self,
        subject: impl Into<String>,
        old: impl Into<String>,
        new: impl Into<String>,
        reason: impl Into<String>,
    ) {
        let e = {
            let mut guard = self.log.locked();
            let (log, next) = &mut *guard;
            let e = Event {
                seq: *next,
                time: SystemTime::now(),
                subject: subject.into(),
                old: old.into(),
                new: new.into(),
                reason: reason.into(),
            };
            *next += 1;
            if log.len() == self.capacity {
                log.pop_front();
            }
            log.push_back(e.clone());
            // Sent under the lock (a send never waits): subscribers get events in the order of
            // their numbers, which a stream resuming by number relies on.
            let _ = self.tx.send(e.clone());
            e
        };
        tracing::info!(subject = %e.subject, old = %e.old, new = %e.new, reason = %e.reason, "transition");
    }

    /// The recorded events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.log.locked().0.iter().cloned().collect()
    }

    /// The recorded events numbered above `seq`, oldest first. A number above the last this
    /// run gave comes from an earlier run whose numbers were higher (the clock was set back
    /// since): every recorded event is newer than it, so all are listed.
    pub fn after(&self, seq: u64) -> Vec<Event> {
        self.since(seq).1
    }

    /// Like [`Events::after`], with how many events of this run numbered above `seq` the log no
    /// longer holds (dropped from the bounded log): 0 when none is missing. (Events of an
    /// earlier run are not counted: their number is not known.)
    pub fn since(&self, seq: u64) -> (u64, Vec<Event>) {
        let guard = self.log.locked();
        let (log, next) = &*guard;
        let first = log.front().map_or(*next, |e| e.seq);
        if seq >= *next {
            // Not a number of this run: everything held is newer.
            return (0, log.iter().cloned().collect());
        }
        let start = log.partition_point(|e| e.seq <= seq);
        let missing = first.saturating_sub(seq.saturating_add(1).max(self.start));
        (missing, log.range(start..).cloned().collect())
    }

    /// The number of the oldest event held, or the next one's when none is held: a reader that
    /// saw up to N and finds this above N + 1 missed the events in between.
    pub fn first(&self) -> u64 {
        let guard = self.log.locked();
        guard.0.front().map_or(guard.1, |e| e.seq)
    }

    /// The number the next event takes (one more than the last given).
    pub fn next_seq(&self) -> u64 {
        self.log.locked().1
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A subscription and the number of the last event given before it: every later event
    /// comes through the receiver (taken under the log's lock, so none falls between).
    pub fn subscribe_at(&self) -> (broadcast::Receiver<Event>, u64) {
        let guard = self.log.locked();
        (self.tx.subscribe(), guard.1.saturating_sub(1))
    }

    /// How many subscribers are listening now.
    pub fn followers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::new(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_bounded_and_ordered() {
        let ev = Events::new(3);
        for i in 0..5 {
            ev.emit(format!("s{i}"), "up", "down", "test");
        }
        let subjects: Vec<String> = ev.recent().into_iter().map(|e| e.subject).collect();
        assert_eq!(subjects, ["s2", "s3", "s4"]);
    }

    #[test]
    fn after_lists_only_newer_events_and_numbers_rise_across_logs() {
        let ev = Events::new(10);
        for i in 0..4 {
            ev.emit(format!("target t{i}"), "up", "down", "test");
        }
        let all = ev.recent();
        let subjects = |v: Vec<Event>| v.into_iter().map(|e| e.subject).collect::<Vec<_>>();
        assert_eq!(subjects(ev.after(all[1].seq)), ["target t2", "target t3"]);
        assert!(ev.after(all[3].seq).is_empty());
        assert_eq!(ev.after(0).len(), 4);
        // A log started later (a restarted server) numbers above the earlier one.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = Events::new(10);
        later.emit("zone example.test", "", "edited", "test");
        assert!(later.recent()[0].seq > all[3].seq);
    }

    #[test]
    fn gaps_are_counted_and_numbers_of_another_run_list_everything() {
        let ev = Events::new(3);
        let start = ev.first();
        assert_eq!(ev.next_seq(), start);
        for i in 0..5 {
            ev.emit(format!("target t{i}"), "up", "down", "test");
        }
        assert_eq!(ev.first(), start + 2);
        // Saw none: the first two were dropped from the log.
        let (missing, list) = ev.since(start - 1);
        assert_eq!((missing, list.len()), (2, 3));
        // From a number of an earlier run: only this run's dropped events are counted.
        assert_eq!(ev.since(0).0, 2);
        assert_eq!(ev.since(start + 2), (0, ev.recent()[1..].to_vec()));
        assert_eq!(ev.since(start + 4), (0, vec![]));
        // A number from a run whose clock was ahead: every event held is newer.
        assert_eq!(ev.since(start + 1_000_000).1.len(), 3);
    }

    #[test]
    fn kinds_follow_subjects() {
        let ev = Events::new(10);
        for s in [
            "target http://x/ (check web)",
            "datacenter eu",
            "partition-guard",
            "node b",
        ] {
            ev.emit(s, "", "", "");
        }
        for s in [
            "override datacenter eu",
            "override endpoint eu/192.0.2.1",
            "weight datacenter eu",
        ] {
            ev.emit(s, "", "", "");
        }
        for s in ["zone example.test", "cluster zones/example.test"] {
            ev.emit(s, "", "", "");
        }
        let kinds: Vec<&str> = ev.recent().iter().map(|e| e.kind().as_str()).collect();
        assert_eq!(
            kinds,
            [
                "health",
                "health",
                "health",
                "health",
                "overrides",
                "overrides",
                "overrides",
                "edits",
                "edits"
            ]
        );
        assert_eq!(Kind::parse("overrides"), Some(Kind::Overrides));
        assert_eq!(Kind::parse("other"), None);
    }
}

/// `2026-11-23T02:14:20.123Z`: UTC, milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Reads what [`rfc3339`] writes (UTC, `Z`, with or without fractions of a second); `None` for
/// anything else.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let rest = text.get(19..)?.strip_suffix('Z')?;
    let nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        _ => return None,
    };
    // Days since 1970-01-01 from the civil date (Howard Hinnant's algorithm).
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_reads_back() {
        use std::time::{Duration, UNIX_EPOCH};
        for ms in [0, 1_795_400_060_123, 951_782_400_000, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(super::parse_rfc3339(&super::rfc3339(t)), Some(t), "{ms}");
        }
        assert_eq!(
            super::parse_rfc3339("2026-11-23T02:14:20Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_400_060))
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T02:14:20+01:00",
            "2026-11-23T02:14:20.Z",
        ] {
            assert_eq!(super::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_known_instants() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_400_060_123)),
            "2026-11-23T02:14:20.123Z"
        );
        assert_eq!(
            super::rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
