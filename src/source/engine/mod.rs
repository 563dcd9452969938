//! The one windowed check-and-issue path every source runs on, generic over a [`Policy`].
//!
//! Time is cut into [`Rotation`] windows. For the window the clock is in, a [`WindowCell`] holds
//! every value that can count, in a fixed [layout](Layout): for each *shared* set (values other
//! replicas can produce too: one per secret of the derived source, one for the Redis source),
//! the values of the window, of the one before and of the one after; then this replica's own
//! *local* values, random, for the window and the one before.
//!
//! A source supplies only its [`Policy`]: how many shared sets it has (through the size of its
//! cell), how to fill the slots of a new window, and what to do before answering from them (a
//! fetch, for the Redis source). The engine does the rest, once for every source:
//!
//! - **check**: pack the claim, compare it in constant time with the issuing value and the one
//!   before (the two that decide almost every claim), and answer from that in the steady part of
//!   the window. Anything else (a claim those two do not accept, a clock outside the steady part)
//!   takes the slow path: move to the clock's window, let the policy prepare, compare with every
//!   slot, and map the hits to a [`NonceCheck`] ([`Layout::verdict`]).
//! - **issue**: the issuing value of the clock's window: the first shared set's, or the local one
//!   when there is no shared value.
//! - **rotation** follows the clock in both directions, under the clock policy below.
//!
//! # Clock policy
//!
//! - A nonce is current during its window, previous during the next one; a shared value of the
//!   next window also counts (as current) during the last `lead` of a window. So a nonce is
//!   accepted for at most two intervals plus the lead, [`Engine::max_nonce_lifetime`].
//! - When the clock steps back, the source moves to the window the clock shows. Local values are
//!   always made afresh, so nothing local comes back. Shared values of a window the source has
//!   already left by more than one window never count again: after a step back of more than one
//!   window, no shared value counts until the clock is past the latest window seen, and the source
//!   hands out fresh local values meanwhile (one retry for a client that then meets another
//!   replica). Rotation therefore goes on every interval whatever the clock does.
//! - A clock reading whose window number does not fit (only with intervals under about one
//!   second, far outside the years 1677 to 2262) accepts nothing: every check answers
//!   [`NonceCheck::Unknown`] and every issued nonce is a fresh random value that is never stored.

mod cell;
mod packed;

use std::fmt;

use time::Duration;

use crate::clock::{Clock, ClockReading};
use crate::nonce::Nonce;
use crate::rotation::Rotation;
use crate::source::NonceCheck;

pub(crate) use cell::{Slots, WindowCell};
#[cfg(feature = "derived")]
pub(crate) use packed::EMPTY;
#[cfg(any(feature = "derived", feature = "redis"))]
pub(crate) use packed::pack_nonce;
pub(crate) use packed::{Packed, fresh_packed, is_empty, pack, unpack};

/// Where each value sits in a cell of `N` slots: `3 * set + CURRENT / PREVIOUS / NEXT` for each
/// shared set, then [`LOCAL_CURRENT`](Layout::LOCAL_CURRENT) and
/// [`LOCAL_PREVIOUS`](Layout::LOCAL_PREVIOUS) at the end. The first set's current value is the
/// one handed out; with no shared set (the in-memory source), the local current one is.
pub(crate) struct Layout<const N: usize>;

/// Offset of a shared set's value for the window of the cell.
pub(crate) const CURRENT: usize = 0;
/// Offset of a shared set's value for the window before.
pub(crate) const PREVIOUS: usize = 1;
/// Offset of a shared set's value for the window after.
pub(crate) const NEXT: usize = 2;

impl<const N: usize> Layout<N> {
    /// How many shared sets a cell of `N` slots holds.
    pub(crate) const SETS: usize = {
        assert!(
            N >= 2 && (N - 2).is_multiple_of(3),
            "3 slots per shared set, then 2 local ones"
        );
        (N - 2) / 3
    };
    /// This replica's own value for the window of the cell.
    pub(crate) const LOCAL_CURRENT: usize = N - 2;
    /// This replica's own value for the window before.
    pub(crate) const LOCAL_PREVIOUS: usize = N - 1;

    /// The slot of `offset` (`CURRENT`, `PREVIOUS` or `NEXT`) in shared set `set`.
    pub(crate) const fn shared(set: usize, offset: usize) -> usize {
        3 * set + offset
    }

    /// The slot handed out from `values`: the first shared set's current value when there is
    /// one, the local current value otherwise.
    pub(crate) fn issuing(values: &[Packed; N]) -> usize {
        if Self::SETS > 0 && !is_empty(&values[Self::shared(0, CURRENT)]) {
            Self::shared(0, CURRENT)
        } else {
            Self::LOCAL_CURRENT
        }
    }

    /// What the hits of a comparison with every slot mean. `filled` says which slots hold a
    /// value; `near_end` whether the clock has reached the last `lead` of the window compared.
    ///
    /// - Current: the value handed out (the first set's current value, or the local one when
    ///   the first set has none), or the first set's next value `near_end`.
    /// - Previous: every other value that counts: previous values, the values of the other
    ///   shared sets (their next values only `near_end`), and a local value the source no longer
    ///   hands out. The validator answers these with the current nonce (RFC 9449 §8.2).
    pub(crate) fn verdict(hits: [bool; N], filled: [bool; N], near_end: bool) -> NonceCheck {
        let sharing = Self::SETS > 0 && filled[Self::shared(0, CURRENT)];
        let local = hits[Self::LOCAL_CURRENT];
        let mut current = local & !sharing;
        let mut previous = hits[Self::LOCAL_PREVIOUS] | (local & sharing);
        for set in 0..Self::SETS {
            let now = hits[Self::shared(set, CURRENT)];
            let before = hits[Self::shared(set, PREVIOUS)];
            let after = hits[Self::shared(set, NEXT)] & near_end;
            if set == 0 {
                current |= now | after;
                previous |= before;
            } else {
                previous |= now | before | after;
            }
        }
        if current {
            NonceCheck::Current
        } else if previous {
            NonceCheck::Previous
        } else {
            NonceCheck::Unknown
        }
    }
}

/// What a source decides; the [`Engine`] does the rest.
pub(crate) trait Policy<const N: usize>: Send + Sync {
    /// The slots of window `target`, the cell holding `latest` (an earlier window, or a later
    /// one after the clock stepped back). Shared values of windows before `floor` must stay
    /// empty. Runs under the cell's writer lock, once per window change.
    fn fill(&self, latest: &Slots<N>, target: i64, floor: i64) -> Slots<N>;

    /// Runs on the slow path, with the slots of the clock's window, before the engine answers
    /// from them: a chance to fetch a missing value (and store it in `cell`). Returns the slots
    /// to answer from. The default changes nothing.
    fn prepare(&self, cell: &WindowCell<N>, slots: Slots<N>, now: ClockReading) -> Slots<N> {
        let _ = (cell, now);
        slots
    }

    /// Whether [`prepare`](Policy::prepare) has work at `now` even in the steady part of a
    /// window (a scheduled re-read, for the Redis source), so that `issue` takes the slow path
    /// and runs it. Checked on every issue: it must be cheap. The default is `false`.
    #[inline]
    fn due(&self, now: &ClockReading) -> bool {
        let _ = now;
        false
    }
}

/// The local slots of window `target` after `latest`: a fresh current value when `fresh`, and
/// `latest`'s current value as the previous one when `target` directly follows it. Every policy
/// fills its local slots through this.
pub(crate) fn carry_local<const N: usize>(
    latest: &Slots<N>,
    target: i64,
    fresh: bool,
    next: &mut Slots<N>,
) {
    if fresh {
        next.values[Layout::<N>::LOCAL_CURRENT] = fresh_packed();
    }
    if latest.window.checked_add(1) == Some(target) {
        next.values[Layout::<N>::LOCAL_PREVIOUS] = latest.values[Layout::<N>::LOCAL_CURRENT];
    }
}

/// `NonceSource` for a source type `$source<C>` whose field `engine` is an [`Engine`]: every
/// method is the engine's, written once for every source.
macro_rules! engine_nonce_source {
    ($source:ident) => {
        impl<C: $crate::Clock> $crate::NonceSource for $source<C> {
            #[inline]
            fn issue(&self) -> $crate::Nonce {
                self.engine.issue()
            }

            #[inline]
            fn check(&self, claim: &str) -> $crate::NonceCheck {
                self.engine.check(claim)
            }

            /// Two rotation intervals, plus the lead during which the next window's value is
            /// accepted (zero for the in-memory source).
            fn max_nonce_lifetime(&self) -> ::time::Duration {
                self.engine.max_nonce_lifetime()
            }
        }
    };
}
pub(crate) use engine_nonce_source;

/// The check, issue and rotation of every source: a clock, a cell of `N` slots, and a policy.
pub(crate) struct Engine<P, C, const N: usize> {
    clock: C,
    cell: WindowCell<N>,
    policy: P,
}

impl<P: Policy<N>, C: Clock, const N: usize> Engine<P, C, N> {
    /// An engine on `clock` whose windows follow `rotation`, whose shared next values count
    /// during the last `lead` of a window, starting in the clock's window.
    pub(crate) fn new(clock: C, rotation: Rotation, lead: Duration, policy: P) -> Self {
        let window = rotation.checked_window_of(clock.unix_time()).unwrap_or(0);
        let empty = Slots::empty(window.saturating_sub(1));
        let first = policy.fill(&empty, window, window.saturating_sub(1));
        Self {
            cell: WindowCell::new(rotation, lead, first),
            clock,
            policy,
        }
    }
}

impl<P, C, const N: usize> Engine<P, C, N> {
    /// The policy.
    #[cfg(any(feature = "derived", feature = "redis"))]
    pub(crate) fn policy(&self) -> &P {
        &self.policy
    }

    /// The clock.
    pub(crate) fn clock(&self) -> &C {
        &self.clock
    }

    /// The cell.
    #[cfg(feature = "redis")]
    pub(crate) fn cell(&self) -> &WindowCell<N> {
        &self.cell
    }

    /// The rotation.
    pub(crate) fn rotation(&self) -> Rotation {
        self.cell.rotation()
    }

    /// How long before a window starts its shared value counts.
    pub(crate) fn lead(&self) -> Duration {
        self.cell.lead()
    }

    /// The longest time a nonce is accepted: two intervals, plus the lead.
    pub(crate) fn max_nonce_lifetime(&self) -> Duration {
        self.rotation()
            .max_nonce_lifetime()
            .saturating_add(self.lead())
    }
}

impl<P: Policy<N>, C: Clock, const N: usize> Engine<P, C, N> {
    /// Whether `claim` is a nonce this source accepts now.
    #[inline]
    pub(crate) fn check(&self, claim: &str) -> NonceCheck {
        // The clock first, so that the comparison runs while the clock is being read (see
        // `ClockReading`). A snapshot newer than the reading is fine: it only holds values the
        // source made or fetched.
        let now = self.clock.read();
        let Some(claim) = pack(claim.as_bytes()) else {
            return NonceCheck::Unknown;
        };
        let fast = self.cell.compare_first::<2>(&claim);
        if now.marks_reached(&[fast.start(), fast.steady_end()]) == 1 {
            // The steady part of the window: the first two slots are the value handed out and
            // the one before (for every layout), and no next value counts.
            if fast.hits[0] {
                return NonceCheck::Current;
            }
            if fast.hits[1] {
                return NonceCheck::Previous;
            }
            if N == 2 {
                return NonceCheck::Unknown;
            }
        }
        self.check_all(&claim)
    }

    /// The slow path of a check: every slot of the clock's window. Out of line: it is the rare
    /// path.
    #[cold]
    #[inline(never)]
    fn check_all(&self, claim: &Packed) -> NonceCheck {
        if self.slots_now().is_none() {
            return NonceCheck::Unknown;
        }
        let compared = self.cell.compare(claim);
        // The next values count once the clock has reached the lead of the window compared
        // (another thread may have moved the cell on meanwhile; its values are then newer).
        let near_end = self.clock.read().has_reached(compared.steady_end());
        Layout::<N>::verdict(compared.hits, compared.filled, near_end)
    }

    /// The nonce to hand out now.
    #[inline]
    pub(crate) fn issue(&self) -> Nonce {
        let now = self.clock.read();
        let (start, steady_end, value) = self.cell.value_in(Layout::<N>::issuing_hint());
        if now.marks_reached(&[start, steady_end]) == 1
            && !self.policy.due(&now)
            && let Some(nonce) = unpack(&value)
        {
            return nonce;
        }
        self.issue_slow()
    }

    /// The rare part of [`issue`](Self::issue): a new window, a missing value, the lead.
    #[cold]
    #[inline(never)]
    fn issue_slow(&self) -> Nonce {
        // A reading with no window accepts nothing: hand out a value that is never stored.
        let Some(slots) = self.slots_now() else {
            return Nonce::generate();
        };
        let slot = Layout::<N>::issuing(&slots.values);
        // Every policy leaves the issuing slot filled (a local value when nothing else); the
        // fallback only keeps this path free of panics, and a value never stored is refused.
        unpack(&slots.values[slot]).unwrap_or_else(Nonce::generate)
    }

    /// The slots of the clock's window, after moving the cell there if needed and letting the
    /// policy prepare them. `None` when the clock's reading has no window.
    pub(crate) fn slots_now(&self) -> Option<Slots<N>> {
        let now = self.clock.read();
        let stored = self.cell.read();
        let slots = if now.marks_reached(&[stored.start, stored.end]) == 1 {
            stored
        } else {
            let rotation = self.rotation();
            self.cell.rotate_to(
                || rotation.checked_window_of(self.clock.unix_time()),
                |latest, target, floor| self.policy.fill(latest, target, floor),
            )?
        };
        Some(self.policy.prepare(&self.cell, slots, now))
    }
}

impl<const N: usize> Layout<N> {
    /// The slot `issue` reads first: the first shared set's current value, or the local one.
    /// (When a shared source has no shared value, that slot is empty and `issue` takes the slow
    /// path, which picks the local one.)
    const fn issuing_hint() -> usize {
        if Self::SETS > 0 {
            Self::shared(0, CURRENT)
        } else {
            Self::LOCAL_CURRENT
        }
    }
}

impl<P, C: fmt::Debug, const N: usize> fmt::Debug for Engine<P, C, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stored = self.cell.read();
        f.debug_struct("Engine")
            .field("clock", &self.clock)
            .field("rotation", &self.cell.rotation().interval())
            .field("lead", &self.cell.lead())
            .field("window", &stored.window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_of_each_slot() {
        // One shared set: [current, previous, next, local current, local previous].
        type L = Layout<5>;
        let all = [true; 5];
        let hit = |slot: usize| {
            let mut hits = [false; 5];
            hits[slot] = true;
            hits
        };
        assert_eq!(L::verdict(hit(0), all, false), NonceCheck::Current);
        assert_eq!(L::verdict(hit(1), all, false), NonceCheck::Previous);
        assert_eq!(L::verdict(hit(2), all, false), NonceCheck::Unknown);
        assert_eq!(L::verdict(hit(2), all, true), NonceCheck::Current);
        // The local value is previous while a shared one is handed out, current otherwise.
        assert_eq!(L::verdict(hit(3), all, false), NonceCheck::Previous);
        let no_shared = [false, true, true, true, true];
        assert_eq!(L::verdict(hit(3), no_shared, false), NonceCheck::Current);
        assert_eq!(L::verdict(hit(4), all, false), NonceCheck::Previous);
        assert_eq!(L::verdict([false; 5], all, true), NonceCheck::Unknown);
    }

    #[test]
    fn other_shared_sets_are_previous_and_their_next_values_count_near_the_end_only() {
        type L = Layout<8>;
        let all = [true; 8];
        let hit = |slot: usize| {
            let mut hits = [false; 8];
            hits[slot] = true;
            hits
        };
        assert_eq!(L::verdict(hit(3), all, false), NonceCheck::Previous);
        assert_eq!(L::verdict(hit(4), all, false), NonceCheck::Previous);
        assert_eq!(L::verdict(hit(5), all, false), NonceCheck::Unknown);
        assert_eq!(L::verdict(hit(5), all, true), NonceCheck::Previous);
    }

    #[test]
    fn with_no_shared_set_the_local_values_are_current_and_previous() {
        type L = Layout<2>;
        assert_eq!(L::SETS, 0);
        let all = [true; 2];
        assert_eq!(L::verdict([true, false], all, false), NonceCheck::Current);
        assert_eq!(L::verdict([false, true], all, false), NonceCheck::Previous);
        assert_eq!(L::issuing(&[[1; packed::WORDS], packed::EMPTY]), 0);
    }
}
