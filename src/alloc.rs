//! Bounding glibc's allocator: two malloc arenas for the whole process
//! unless the operator says otherwise, and free memory handed back after
//! the work that frees much at once ([`trim`]).
//!
//! glibc gives threads arenas of their own (up to eight per core), and
//! memory freed in one stays in it. A drain hands batches between threads
//! (fetched on the runtime, prepared on a scoped thread per core,
//! committed on a blocking thread), so every arena ends up holding a
//! batch's worth of freed memory. A 10,000-message IMAP drain (2 cores,
//! interleaved runs) peaked at 134–141 MB with glibc's default, 107–120 MB
//! with two arenas at the same rate, and 99–101 MB with one arena but
//! 10–20 % slower (the threads then queue for one lock); BENCHMARKS.md,
//! "Ingest memory".
//! `MALLOC_ARENA_MAX` in the environment wins: glibc reads it itself, and
//! [`bound_arenas`] then leaves the setting alone.

/// The arenas ticketd asks glibc for when `MALLOC_ARENA_MAX` is not set.
pub const ARENAS: i32 = 2;

/// Hand memory the allocator holds free back to the system (glibc's
/// `malloc_trim`; a no-op elsewhere). Called after the work that frees a
/// lot at once: opening a large store (sled's recovery), a long streamed
/// read. At a million cases the daemon held 482 MB after opening the
/// store and 424 MB after a trim, and a full list then added 11 MB.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the
    // system; it is thread-safe and has no effect on live allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Call first thing in `main`, before any thread starts. A no-op off
/// glibc, or when `MALLOC_ARENA_MAX` is set.
pub fn bound_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before any other thread exists, and a refusal (0) leaves glibc's
        // default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}
