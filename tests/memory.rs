//! What a served zone costs in heap, counted by this binary's global allocator (bytes allocated
//! and not yet freed, by every thread): the records are held once, by the snapshot, in compact
//! form; and an edit leaves no old snapshot or load-time copy behind. `bench/memory.sh`
//! measures the resident size of the whole process against NSD.

use meridian::config::{self, CommandLine};
use meridian::control::Control;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Bytes allocated and not freed, by every thread.
static LIVE: AtomicI64 = AtomicI64::new(0);

struct Live;

// SAFETY: every call is passed to `System` unchanged; counting touches no allocation.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Live = Live;

/// The counter is process-wide: one measurement at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

const RECORDS: usize = 20_000;

/// A zone of `RECORDS` names, one A record each (as `bench/memory.sh` writes it), `h1` at
/// 203.0.113.`last`.
fn zone_text(last: u8) -> String {
    let mut text = String::from(
        "zone: big.test\nsoa: { mname: ns1.big.test., rname: h.big.test., serial: 1 }\n\
         ns: [ns1.big.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n",
    );
    for i in 0..RECORDS {
        let addr = if i == 1 {
            format!("203.0.113.{last}")
        } else {
            format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
        };
        text.push_str(&format!("  h{i}: {{ A: [{addr}] }}\n"));
    }
    text
}

fn setup(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/big.test.yaml"), zone_text(1)).unwrap();
    let path = dir.join("meridian.yaml");
    std::fs::write(
        &path,
        "dns: { listen: [\"127.0.0.1:0\"] }\nadmin: { listen: \"off\" }\nlog: { level: warn }\n\
         zones_dir: zones\nstate_dir: state\n",
    )
    .unwrap();
    path
}

fn per_record(bytes: i64) -> i64 {
    bytes / RECORDS as i64
}

/// A served zone is held once, in the snapshot: `meridian serve` keeps no copy of the records
/// it loaded (it kept the whole validated configuration, a second copy of every record and the
/// spare capacity of its load-time vectors: 1,028 bytes a record in all), and the snapshot
/// holds a name with one A record in about 225 bytes (owner name 17, key 17, RRset 32, data
/// 40, its hash table slot 120), beside the server's own megabyte (50 bytes a record here).
#[test]
fn a_served_zone_is_held_once_and_compactly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path());
    let ready = dir.path().join("ready");
    let before = live();
    let config = config::load(&path).unwrap();
    let ready_file = ready.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Serves until the test binary exits.
        let _ = runtime.block_on(meridian::app::serve(
            config,
            CommandLine::default(),
            None,
            Some(ready_file),
        ));
    });
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = per_record(live() - before);
    assert!(
        held <= 300,
        "serving {RECORDS} records holds {held} bytes a record"
    );
}

/// Edits publish a new snapshot each; the one before is freed (no reader, log or cache keeps
/// it), and what is held after five edits is what was held after one.
#[test]
fn edits_leave_no_old_snapshot_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(edits());
}

async fn edits() {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path());
    let stop = tokio_util::sync::CancellationToken::new();
    let ctl = Control::new(config::load(&path).unwrap(), &stop).unwrap();
    let file = dir.path().join("zones/big.test.yaml");
    let edit = |last: u8| {
        let ctl = ctl.clone();
        let file = file.clone();
        async move {
            let change = ctl.begin_change().await;
            ctl.commit(change, &file, Some(zone_text(last)), "zone big.test", "test")
                .await
                .unwrap();
        }
    };
    let first = std::sync::Arc::downgrade(&ctl.snapshot());
    edit(2).await;
    assert!(first.upgrade().is_none(), "the first snapshot is still held");
    let after_one = live();
    for last in 3..7 {
        let previous = std::sync::Arc::downgrade(&ctl.snapshot());
        edit(last).await;
        assert!(
            previous.upgrade().is_none(),
            "the snapshot before edit {last} is still held"
        );
    }
    let grown = per_record(live() - after_one);
    assert!(
        grown <= 10,
        "four more edits hold {grown} bytes a record more than one"
    );
    stop.cancel();
}

fn vm_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a thread frees is handed back by `memory::release_freed`, even after a large block
/// was freed (a zone file's text): glibc then raised its trim threshold to twice that block,
/// and the free top of the thread's arena, below it, stayed resident (41 MiB here) whatever
/// `malloc_trim` did. `memory::configure` fixes the thresholds.
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn memory_freed_by_another_thread_is_handed_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    meridian::memory::configure();
    drop(std::hint::black_box(vec![1u8; 30 << 20]));
    let before = vm_rss_kib();
    std::thread::spawn(|| {
        // Small blocks, as a parse makes them: in this thread's arena, not mapped one by one.
        let blocks: Vec<Box<[u8; 200]>> = (0..200_000).map(|_| Box::new([1u8; 200])).collect();
        drop(std::hint::black_box(blocks));
    })
    .join()
    .unwrap();
    meridian::memory::release_freed();
    let kept = (vm_rss_kib() - before) / 1024;
    assert!(kept < 8, "{kept} MiB freed by a thread stayed resident");
}
