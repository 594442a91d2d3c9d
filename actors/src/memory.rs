//! Memory the allocator keeps. glibc's malloc gives threads that allocate their own arenas (up
//! to eight per core) and keeps what is freed in them: a sync of a large tree (the listings
//! and items of 100k files, built on blocking-pool threads) left the daemon 60-70 MB resident
//! for good, where it idles at ~15 MB. Other allocators and systems: nothing to do.

/// Caps glibc's arenas at two: the daemon's work runs on one scheduler thread and a few
/// blocking threads at a time, and each further arena only holds memory freed elsewhere. A
/// `MALLOC_ARENA_MAX` in the environment wins. Called once, before the runtime's threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: sets one of the allocator's parameters; no memory is touched.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Gives what large work freed back to the system (a sync run of many files). Takes a few
/// milliseconds on a large heap: call it on the blocking pool.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: trims the allocator's free memory; nothing in use is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
