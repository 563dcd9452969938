//! A window number plus a few packed nonces, readable by many threads without writing shared
//! memory.
//!
//! This is a sequence lock built from atomics, in safe Rust. Readers load a sequence number,
//! copy the words, and load the sequence number again; if it changed (or was odd, meaning a write
//! was under way) they copy again. Readers never write, so the read path scales across cores
//! instead of bouncing a reader count between them as a read-write lock does. Writers take a
//! mutex, so there is at most one at a time, and they write only when a window changes.

use std::array;
use std::hint;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};

use parking_lot::Mutex;
use time::Duration;

use crate::ct::{EMPTY, Packed, WORDS};
use crate::rotation::Rotation;

/// What a [`WindowCell`] holds: the window its slots belong to, and the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots<const N: usize> {
    pub(crate) window: i64,
    pub(crate) values: [Packed; N],
}

impl<const N: usize> Slots<N> {
    /// Slots for `window` with every value empty.
    pub(crate) const fn empty(window: i64) -> Self {
        Self {
            window,
            values: [EMPTY; N],
        }
    }
}

pub(crate) struct WindowCell<const N: usize> {
    sequence: AtomicU64,
    window: AtomicI64,
    values: [[AtomicU64; WORDS]; N],
    writer: Mutex<()>,
}

impl<const N: usize> WindowCell<N> {
    pub(crate) fn new(initial: Slots<N>) -> Self {
        Self {
            sequence: AtomicU64::new(0),
            window: AtomicI64::new(initial.window),
            values: initial.values.map(|words| words.map(AtomicU64::new)),
            writer: Mutex::new(()),
        }
    }

    /// A consistent copy of the slots. Never blocks on a lock; retries while a write is under way.
    #[inline]
    pub(crate) fn read(&self) -> Slots<N> {
        let mut spins = 0u32;
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            if before & 1 == 0 {
                let window = self.window.load(Ordering::Relaxed);
                let values = array::from_fn(|slot| {
                    array::from_fn(|word| self.values[slot][word].load(Ordering::Relaxed))
                });
                fence(Ordering::Acquire);
                if self.sequence.load(Ordering::Relaxed) == before {
                    return Slots { window, values };
                }
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                hint::spin_loop();
            }
        }
    }

    /// The slots for the window that contains `now`. When `now` lies in a later window than the
    /// stored one, `rotate(latest, target)` builds the slots for window `target` under the writer
    /// lock (only the first caller to see the new window does). When `now` lies in an earlier
    /// window (the clock stepped back), the stored slots are kept: a source never returns to an
    /// older window, so it never resurrects an old nonce.
    #[inline]
    pub(crate) fn forward_to(
        &self,
        rotation: &Rotation,
        now: Duration,
        rotate: impl FnOnce(&Slots<N>, i64) -> Slots<N>,
    ) -> Slots<N> {
        let stored = self.read();
        if rotation.contains(stored.window, now) {
            return stored;
        }
        let target = rotation.window_of(now);
        if target <= stored.window {
            return stored;
        }
        self.update(|latest| (latest.window < target).then(|| rotate(latest, target)))
    }

    /// Runs `change` on the current slots while holding the writer lock, and stores what it
    /// returns. `change` sees the latest value (not a stale read), so a caller that lost a race
    /// to another writer finds the work already done and returns `None`.
    pub(crate) fn update(&self, change: impl FnOnce(&Slots<N>) -> Option<Slots<N>>) -> Slots<N> {
        let _writer = self.writer.lock();
        let current = self.read();
        let Some(next) = change(&current) else {
            return current;
        };
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.window.store(next.window, Ordering::Relaxed);
        for (slot, words) in self.values.iter().zip(&next.values) {
            for (cell, word) in slot.iter().zip(words) {
                cell.store(*word, Ordering::Relaxed);
            }
        }
        self.sequence
            .store(sequence.wrapping_add(2), Ordering::Release);
        next
    }
}

impl<const N: usize> std::fmt::Debug for WindowCell<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowCell")
            .field("window", &self.read().window)
            .field("slots", &N)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn readers_never_see_a_torn_write() {
        let cell = Arc::new(WindowCell::<2>::new(Slots::empty(0)));
        let writer = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                for i in 1..=20_000i64 {
                    let word = i as u64;
                    cell.update(|_| {
                        Some(Slots {
                            window: i,
                            values: [[word; WORDS], [word.wrapping_mul(3); WORDS]],
                        })
                    });
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() {
            let seen = cell.read();
            assert!(seen.window >= last, "windows never go back");
            last = seen.window;
            let word = seen.window as u64;
            if seen.window > 0 {
                assert_eq!(seen.values, [[word; WORDS], [word.wrapping_mul(3); WORDS]]);
            }
        }
        writer.join().unwrap();
        assert_eq!(cell.read().window, 20_000);
    }

    #[test]
    fn update_returning_none_changes_nothing() {
        let cell = WindowCell::<1>::new(Slots::empty(7));
        let seen = cell.update(|_| None);
        assert_eq!(seen, Slots::empty(7));
        assert_eq!(cell.read(), Slots::empty(7));
    }
}
