//! Memory figures, measured with a counting global allocator: the bytes one in-memory source
//! takes, and the bytes one replay-cache entry takes when the cache is full.
//!
//! ```text
//! cargo bench --all-features --bench memory
//! ```
//!
//! The figures are printed; nothing is timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use dpop_nonce::{InMemoryNonceSource, ManualClock, NonceSource, NonceValidator};

/// The system allocator, counting the bytes currently allocated and the allocations made.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes still held, and allocations made, by what `make` returns (kept alive while
/// counting).
fn measure<T>(make: impl FnOnce() -> T) -> (T, isize, usize) {
    let live = LIVE.load(Ordering::Relaxed);
    let count = ALLOCATIONS.load(Ordering::Relaxed);
    let value = make();
    let bytes = LIVE.load(Ordering::Relaxed) - live;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - count;
    (value, bytes, allocations)
}

fn in_memory_source() {
    println!("in-memory source");
    println!(
        "  size_of::<InMemoryNonceSource>()                 {:>6} bytes",
        size_of::<InMemoryNonceSource>()
    );
    println!(
        "  size_of::<NonceValidator<InMemoryNonceSource>>() {:>6} bytes",
        size_of::<NonceValidator<InMemoryNonceSource>>()
    );
    let (source, heap, allocations) = measure(InMemoryNonceSource::new);
    println!(
        "  heap held by a new source (by value)             {heap:>6} bytes in {allocations} allocations"
    );
    // Checking and issuing must not leave anything on the heap either.
    let (_, after, _) = measure(|| {
        let nonce = source.issue();
        black(source.check(nonce.as_str()));
    });
    println!("  heap left behind by issue + check                {after:>6} bytes");
    let (boxed, heap, _) = measure(|| Arc::new(InMemoryNonceSource::new()));
    println!("  one source in an Arc (the usual way to share it) {heap:>6} bytes");
    let (many, heap, _) = measure(|| {
        (0..1_000)
            .map(|_| InMemoryNonceSource::new())
            .collect::<Vec<_>>()
    });
    println!(
        "  1000 sources in a Vec                            {:>6.1} bytes each",
        heap as f64 / 1_000.0
    );
    let (manual, heap, _) = measure(|| {
        InMemoryNonceSource::builder()
            .clock(Arc::new(ManualClock::default()))
            .build()
    });
    println!(
        "  a source on an Arc<ManualClock> (heap: the clock) {heap:>5} bytes, plus {} inline",
        size_of::<InMemoryNonceSource<Arc<ManualClock>>>()
    );
    drop((source, boxed, many, manual));
}

fn black<T>(value: T) {
    std::hint::black_box(value);
}

/// The replay cache's figures; see [`extra`].
fn replay_cache() {
    extra::replay_cache();
}

mod extra {
    #[cfg(feature = "replay")]
    pub(super) fn replay_cache() {
        use dpop_nonce::replay::{InMemoryReplayCache, ReplayCache, ReplayKey};
        use time::Duration;

        println!("in-memory replay cache (entries live 10 minutes, so none expires here)");
        for capacity in [10_000usize, InMemoryReplayCache::DEFAULT_CAPACITY] {
            let (cache, empty, _) = super::measure(|| {
                InMemoryReplayCache::builder(Duration::minutes(10))
                    .capacity(capacity)
                    .build()
            });
            let Ok(cache) = cache else {
                println!("  capacity {capacity}: the cache did not build");
                continue;
            };
            let mut inserted = 0usize;
            let (_, filled, _) = super::measure(|| {
                let mut counter = 0u64;
                // Keys are SHA-256 digests, as `ReplayKey::new` makes them; insert until the
                // cache refuses (a shard is full), then a while more to fill the other shards.
                let mut refused = 0usize;
                while refused < capacity / 10 + 100 {
                    counter += 1;
                    let Ok(key) = ReplayKey::new("bench", counter.to_le_bytes()) else {
                        break;
                    };
                    match cache.insert(&key) {
                        Ok(_) => inserted += 1,
                        Err(_) => refused += 1,
                    }
                }
            });
            let entries = inserted.max(1) as f64;
            println!(
                "  capacity {capacity:>7}: empty {empty:>8} bytes; full ({inserted} entries) {filled:>9} bytes more; \
                 {:.1} bytes per entry added, {:.1} per entry in all",
                filled as f64 / entries,
                (empty + filled) as f64 / entries
            );
            drop(cache);
        }
    }

    #[cfg(not(feature = "replay"))]
    pub(super) fn replay_cache() {
        println!("replay cache: not measured (build with --features replay or --all-features)");
    }
}

fn main() {
    in_memory_source();
    replay_cache();
}
