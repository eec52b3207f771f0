//! Handing freed memory back to the system.
//!
//! glibc's malloc keeps what is freed in its arenas (one per thread that allocated, up to eight
//! per core) for the next allocation, and returns it to the system only from the top of each
//! heap. After a zone is loaded, or a burst of TCP connections is served, most of what was
//! freed stays resident; a trim gives back every free page.
//!
//! Not quite every page: the free space at the top of a thread's arena is given back only when
//! it exceeds the trim threshold, which glibc raises (up to 64 MiB) each time a large block is
//! freed. An edit of a large zone parses it on one thread and compiles it on another: with the
//! moving thresholds each such arena kept tens of megabytes resident that `malloc_trim` did
//! not touch. [`configure`] fixes both thresholds at glibc's initial 128 KiB.
//!
//! Even so, free space below a block still in use at the top of a thread's arena stays: with
//! an arena per thread, sixty edits of a 100,000-record zone still left the resident size
//! between 1.0 and 1.5 times the start, depending on which threads did the work. One arena
//! (the answer path allocates nothing; the threads that do keep small blocks in their own
//! caches, taken without the arena's lock) keeps it within 2% of the start.

/// Returns every whole free page of every malloc arena to the system. Takes a few milliseconds
/// for a heap of hundreds of megabytes: call it off the async threads, after work that freed a
/// lot, never on the answer path.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fixes glibc's thresholds at their initial values: blocks of 128 KiB and more are mapped and
/// unmapped on their own (a zone file's text, a large zone's tables), and free space above
/// 128 KiB at the top of the heap is given back; and makes every thread allocate from one
/// arena. Call once, first thing in the process, before other threads start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's malloc parameters; it has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// glibc's initial mmap and trim thresholds (`DEFAULT_MMAP_THRESHOLD_MIN`, `DEFAULT_TRIM_THRESHOLD`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD: libc::c_int = 128 * 1024;
