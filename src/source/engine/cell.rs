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
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering, fence};

use parking_lot::Mutex;
use subtle::BlackBox;
use time::Duration;

use super::packed::{EMPTY, Packed, WORDS};
use crate::rotation::Rotation;

/// What a [`WindowCell`] holds: the window its slots belong to, when that window starts and
/// ends, and the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slots<const N: usize> {
    pub(crate) window: i64,
    /// Start of the window, as time since the UNIX epoch. Set by the cell from its rotation.
    pub(crate) start: Duration,
    /// End of the window (exclusive). Set by the cell from its rotation.
    pub(crate) end: Duration,
    pub(crate) values: [Packed; N],
}

impl<const N: usize> Slots<N> {
    /// Slots for `window` with every value empty. The cell fills in the window's bounds when it
    /// stores them.
    pub(crate) const fn empty(window: i64) -> Self {
        Self {
            window,
            start: Duration::ZERO,
            end: Duration::ZERO,
            values: [EMPTY; N],
        }
    }
}

/// What [`WindowCell::compare`] found: which slots equal the claim, and the bounds of the
/// steady part of the window they belong to.
///
/// The bounds are kept as raw parts and turned into [`Duration`]s only when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compared<const N: usize> {
    start: (i64, i32),
    steady_end: (i64, i32),
    pub(crate) hits: [bool; N],
    /// Which slots hold a value (are not [`EMPTY`]). Whether a slot is empty is not secret.
    pub(crate) filled: [bool; N],
}

impl<const N: usize> Compared<N> {
    /// Start of the window the hits belong to. Only the sources that follow a clock that steps
    /// back (derived, Redis) look at it.
    #[cfg_attr(not(any(feature = "derived", feature = "redis")), allow(dead_code))]
    #[inline]
    pub(crate) fn start(&self) -> Duration {
        from_parts(self.start)
    }

    /// End (exclusive) of the steady part of the window the hits belong to: the window's end
    /// minus the cell's lead (see [`WindowCell::new`]).
    #[inline]
    pub(crate) fn steady_end(&self) -> Duration {
        from_parts(self.steady_end)
    }
}

/// The duration stored as `parts` (whole seconds, and nanoseconds as `Duration` keeps them).
///
/// The nanoseconds are clamped to the range a `Duration` keeps them in, which they are always in
/// already. That costs nothing, and it tells the compiler that `Duration::new` has nothing to
/// carry from them into the seconds, so the division and remainder by 10^9 it would otherwise do
/// on every check are compiled away.
#[inline]
fn from_parts((seconds, nanoseconds): (i64, i32)) -> Duration {
    const BELOW_ONE_SECOND: i32 = 999_999_999;
    Duration::new(
        seconds,
        nanoseconds.clamp(-BELOW_ONE_SECOND, BELOW_ONE_SECOND),
    )
}

/// A window bound kept in two atomics (whole seconds, and nanoseconds), so that reading it
/// needs no arithmetic.
struct AtomicBound {
    seconds: AtomicI64,
    nanoseconds: AtomicI32,
}

impl AtomicBound {
    fn new(at: Duration) -> Self {
        Self {
            seconds: AtomicI64::new(at.whole_seconds()),
            nanoseconds: AtomicI32::new(at.subsec_nanoseconds()),
        }
    }

    #[inline]
    fn load(&self) -> Duration {
        from_parts(self.load_parts())
    }

    #[inline]
    fn load_parts(&self) -> (i64, i32) {
        (
            self.seconds.load(Ordering::Relaxed),
            self.nanoseconds.load(Ordering::Relaxed),
        )
    }

    fn store(&self, at: Duration) {
        self.seconds.store(at.whole_seconds(), Ordering::Relaxed);
        self.nanoseconds
            .store(at.subsec_nanoseconds(), Ordering::Relaxed);
    }
}

pub(crate) struct WindowCell<const N: usize> {
    rotation: Rotation,
    lead: Duration,
    sequence: AtomicU64,
    window: AtomicI64,
    start: AtomicBound,
    end: AtomicBound,
    /// `end` minus `lead`, stored so that a check does no arithmetic on it.
    steady_end: AtomicBound,
    values: [[AtomicU64; WORDS]; N],
    /// The writer lock, and what writers remember of the windows they stored.
    writer: Mutex<History>,
}

/// The windows a cell has held, kept under its writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct History {
    /// The latest window ever stored.
    highest: i64,
    /// The oldest window whose shared values may be stored (see [`WindowCell::update`]).
    floor: i64,
}

impl History {
    fn new(window: i64) -> Self {
        Self {
            highest: window,
            floor: window.saturating_sub(1),
        }
    }

    /// Records that the cell moves to `target`, and returns the floor that applies there.
    ///
    /// Going forward, the floor is one window behind the latest window: the previous window's
    /// value still counts. A step back of more than one window raises the floor past the latest
    /// window, so no value of a window the cell has already been through counts again, however
    /// the clock moves after that.
    fn enter(&mut self, target: i64) -> i64 {
        if target < self.highest.saturating_sub(1) {
            self.floor = self.floor.max(self.highest.saturating_add(1));
        }
        self.highest = self.highest.max(target);
        self.floor = self.floor.max(self.highest.saturating_sub(1));
        self.floor
    }
}

impl<const N: usize> WindowCell<N> {
    /// A cell whose windows follow `rotation`, holding `initial`. The steady part of each window
    /// ends `lead` before the window does (a source that prepares the next window early, or
    /// accepts its nonce early, passes that time; others pass zero). [`compare`](Self::compare)
    /// returns the steady part's bounds.
    pub(crate) fn new(rotation: Rotation, lead: Duration, initial: Slots<N>) -> Self {
        let initial = bounded(rotation, initial);
        Self {
            rotation,
            lead,
            sequence: AtomicU64::new(0),
            window: AtomicI64::new(initial.window),
            start: AtomicBound::new(initial.start),
            end: AtomicBound::new(initial.end),
            steady_end: AtomicBound::new(initial.end.saturating_sub(lead)),
            values: initial.values.map(|words| words.map(AtomicU64::new)),
            writer: Mutex::new(History::new(initial.window)),
        }
    }

    /// The rotation the cell's windows follow.
    pub(crate) fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// How long before its window ends the steady part of a window ends.
    pub(crate) fn lead(&self) -> Duration {
        self.lead
    }

    /// Runs `read` over the cell's atomics until it ran during no write, and returns what that
    /// run returned: the sequence-lock protocol, in one place. `read` may see a torn state on a
    /// run that is then thrown away, so it must only load and compute, never act. Never blocks on
    /// a lock; spins (and then yields) while a write is under way.
    #[inline]
    fn consistent<T>(&self, read: impl Fn(&Self) -> T) -> T {
        let mut spins = 0u32;
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            if before & 1 == 0 {
                let seen = read(self);
                fence(Ordering::Acquire);
                if self.sequence.load(Ordering::Relaxed) == before {
                    return seen;
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

    /// A consistent copy of the slots.
    #[inline]
    pub(crate) fn read(&self) -> Slots<N> {
        self.consistent(|cell| Slots {
            window: cell.window.load(Ordering::Relaxed),
            start: cell.start.load(),
            end: cell.end.load(),
            values: array::from_fn(|slot| {
                array::from_fn(|word| cell.values[slot][word].load(Ordering::Relaxed))
            }),
        })
    }

    /// Compares `claim` with every slot, reading the words straight from the cell rather than
    /// copying the slots out first, and returns the hits with the bounds of the steady part of
    /// the window they belong to, all from one consistent read. Every slot is compared, always
    /// all of them: the words are XORed and OR-accumulated with no early exit, and the result of
    /// every slot goes through one `subtle` barrier at the end. Empty slots never match, since a
    /// packed claim is never all zeros.
    #[inline(always)]
    pub(crate) fn compare(&self, claim: &Packed) -> Compared<N> {
        self.compare_first::<N>(claim)
    }

    /// [`compare`](Self::compare) over the first `M` slots only (`M` at most `N`).
    #[inline(always)]
    pub(crate) fn compare_first<const M: usize>(&self, claim: &Packed) -> Compared<M> {
        const { assert!(M <= N && M <= 64, "one bit per slot in a u64") };
        let (start, steady_end, diffs) = self.consistent(|cell| {
            let diffs: [(u64, u64); M] = array::from_fn(|slot| {
                let (mut diff, mut any) = (0u64, 0u64);
                for (word, atomic) in claim.iter().zip(&cell.values[slot]) {
                    let stored = atomic.load(Ordering::Relaxed);
                    diff |= word ^ stored;
                    any |= stored;
                }
                (diff, any)
            });
            (cell.start.load_parts(), cell.steady_end.load_parts(), diffs)
        });
        // One bit per slot, set when the slot differs from the claim, computed without a branch,
        // then one `subtle` barrier over all of them: past it, the compiler knows nothing of the
        // bits, so it cannot turn the comparison above into an early exit.
        let mut differs = 0u64;
        for (slot, (diff, _)) in diffs.iter().enumerate() {
            differs |= ((diff | diff.wrapping_neg()) >> 63) << slot;
        }
        let differs = BlackBox::new(differs).get();
        Compared {
            start,
            steady_end,
            hits: array::from_fn(|slot| (differs >> slot) & 1 == 0),
            filled: diffs.map(|(_, any)| any != 0),
        }
    }

    /// The value in `slot` and the bounds of the steady part of its window, from one consistent
    /// read: what a source hands out in the common case, without copying every slot.
    #[inline]
    pub(crate) fn value_in(&self, slot: usize) -> (Duration, Duration, Packed) {
        self.consistent(|cell| {
            let value: Packed =
                array::from_fn(|word| cell.values[slot][word].load(Ordering::Relaxed));
            (cell.start.load(), cell.steady_end.load(), value)
        })
    }

    /// The oldest window whose shared values may be stored now.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn floor(&self) -> i64 {
        self.writer.lock().floor
    }

    /// Moves the cell to the window `target` returns, read under the writer lock so that no
    /// reading older than a window another thread has stored can move the cell back. `fill`
    /// builds the slots of that window from the latest ones and the floor (see
    /// [`update`](Self::update)). Nothing is written when the cell holds that window already;
    /// `None` when `target` has no window to give.
    pub(crate) fn rotate_to(
        &self,
        target: impl FnOnce() -> Option<i64>,
        fill: impl FnOnce(&Slots<N>, i64, i64) -> Slots<N>,
    ) -> Option<Slots<N>> {
        let mut history = self.writer.lock();
        let current = self.read();
        let target = target()?;
        if target == current.window {
            return Some(current);
        }
        let floor = history.enter(target);
        Some(self.store(fill(&current, target, floor)))
    }

    /// Runs `change` on the current slots while holding the writer lock, and stores what it
    /// returns. `change` sees the latest value (not a stale read), so a caller that lost a race
    /// to another writer finds the work already done and returns `None`.
    ///
    /// `change` is also given the floor: the oldest window whose *shared* values (values that
    /// other replicas or a function of the window number can produce again) may be stored. Values
    /// of older windows must stay out, so that a clock that stepped back never brings one back.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn update(
        &self,
        change: impl FnOnce(&Slots<N>, i64) -> Option<Slots<N>>,
    ) -> Slots<N> {
        let history = self.writer.lock();
        let current = self.read();
        match change(&current, history.floor) {
            Some(next) => self.store(next),
            None => current,
        }
    }

    /// Publishes `next`; the caller holds the writer lock.
    fn store(&self, next: Slots<N>) -> Slots<N> {
        let next = bounded(self.rotation, next);
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence
            .store(sequence.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.window.store(next.window, Ordering::Relaxed);
        self.start.store(next.start);
        self.end.store(next.end);
        self.steady_end.store(next.end.saturating_sub(self.lead));
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

/// `slots` with the bounds of its window under `rotation`.
fn bounded<const N: usize>(rotation: Rotation, slots: Slots<N>) -> Slots<N> {
    Slots {
        start: rotation.window_start(slots.window),
        end: rotation.window_start(slots.window.saturating_add(1)),
        ..slots
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
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let cell = Arc::new(WindowCell::<2>::new(
            rotation,
            Duration::ZERO,
            Slots::empty(0),
        ));
        let writer = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                for i in 1..=20_000i64 {
                    let word = i as u64;
                    cell.update(|_, _| {
                        Some(Slots {
                            values: [[word; WORDS], [word.wrapping_mul(3); WORDS]],
                            ..Slots::empty(i)
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
            assert_eq!(seen.start, Duration::seconds(10 * seen.window));
            assert_eq!(seen.end, Duration::seconds(10 * seen.window + 10));
        }
        writer.join().unwrap();
        assert_eq!(cell.read().window, 20_000);
    }

    #[test]
    fn compare_checks_every_slot_and_never_matches_an_empty_one() {
        use super::super::packed::pack_nonce;
        use crate::nonce::Nonce;
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let a = pack_nonce(&Nonce::generate()).unwrap();
        let b = pack_nonce(&Nonce::generate()).unwrap();
        let cell = WindowCell::<3>::new(
            rotation,
            Duration::seconds(2),
            Slots {
                values: [a, b, EMPTY],
                ..Slots::empty(4)
            },
        );
        let seen = cell.compare(&a);
        assert_eq!(seen.hits, [true, false, false]);
        assert_eq!(seen.filled, [true, true, false]);
        assert_eq!(
            (seen.start(), seen.steady_end()),
            (Duration::seconds(40), Duration::seconds(48))
        );
        assert_eq!(cell.compare(&b).hits, [false, true, false]);
        let other = pack_nonce(&Nonce::generate()).unwrap();
        assert_eq!(cell.compare(&other).hits, [false, false, false]);
    }

    #[test]
    fn compare_first_compares_only_the_first_slots() {
        use super::super::packed::pack_nonce;
        use crate::nonce::Nonce;
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let values = [(); 3].map(|()| pack_nonce(&Nonce::generate()).unwrap());
        let cell = WindowCell::<3>::new(
            rotation,
            Duration::seconds(3),
            Slots {
                values,
                ..Slots::empty(2)
            },
        );
        assert_eq!(cell.compare_first::<2>(&values[0]).hits, [true, false]);
        assert_eq!(cell.compare_first::<2>(&values[1]).hits, [false, true]);
        let third = cell.compare_first::<2>(&values[2]);
        assert_eq!(third.hits, [false, false]);
        assert_eq!(
            (third.start(), third.steady_end()),
            (Duration::seconds(20), Duration::seconds(27))
        );
        assert_eq!(cell.compare(&values[2]).hits, [false, false, true]);
    }

    #[test]
    fn a_step_back_of_more_than_one_window_raises_the_floor_past_every_window_seen() {
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let cell = WindowCell::<1>::new(rotation, Duration::ZERO, Slots::empty(10));
        let floors = std::cell::RefCell::new(Vec::new());
        let go = |target: i64| {
            cell.rotate_to(
                || Some(target),
                |_, target, floor| {
                    floors.borrow_mut().push(floor);
                    Slots::empty(target)
                },
            )
        };
        go(11); // forward: the previous window still counts
        go(10); // back by one window: nothing changes
        go(5); // back by more: nothing up to 11 counts again
        go(11);
        go(12);
        go(13);
        assert_eq!(*floors.borrow(), [10, 10, 12, 12, 12, 12]);
        assert_eq!(cell.floor(), 12);
        assert_eq!(cell.read().window, 13);
    }

    #[test]
    fn rotate_to_the_stored_window_writes_nothing() {
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let cell = WindowCell::<1>::new(rotation, Duration::ZERO, Slots::empty(3));
        let seen = cell.rotate_to(|| Some(3), |_, _, _| unreachable!("no write"));
        assert_eq!(seen.map(|s| s.window), Some(3));
        assert_eq!(cell.rotate_to(|| None, |_, _, _| unreachable!()), None);
    }

    #[test]
    fn update_returning_none_changes_nothing() {
        let rotation = Rotation::new(Duration::seconds(10)).unwrap();
        let cell = WindowCell::<1>::new(rotation, Duration::ZERO, Slots::empty(7));
        let before = cell.read();
        assert_eq!(
            (before.window, before.start, before.end),
            (7, Duration::seconds(70), Duration::seconds(80))
        );
        let seen = cell.update(|_, _| None);
        assert_eq!(seen, before);
        assert_eq!(cell.read(), before);
    }
}
