//! The simulator's event queue: a calendar queue ordered by `(time, sequence)`.

use crate::time::Nanos;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A queued event. Requests and probes keep their state in the loop's tables, so an event
/// is 8 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ev {
    /// The next scheduled arrival (kept in `next`).
    Arrival,
    /// Closed loop: user `u` starts a request.
    User { u: u32 },
    /// Request slot `r` tries position `k` of its plan, attempt `a` (both kept in the slot).
    Attempt { r: u32 },
    /// Request slot `r`'s attempt in flight ended (its result is kept in the slot).
    Done { r: u32 },
    /// Probe slot `i` (target `i mod n` of replica `i / n`) starts its probe.
    ProbeStart { i: u32 },
    /// Probe slot `i`'s probe ended.
    ProbeEnd { i: u32, ok: bool },
}

/// log2 of a wheel slot's length in ns (≈ 16.8 ms: at the article's 155 req/s a slot
/// holds a few completions, so advancing a slot and sorting it are shared among them).
pub(super) const SLOT_BITS: u32 = 24;
/// Slots on the wheel (a power of two): it spans ≈ 69 s ahead of the current slot.
pub(super) const SLOTS: usize = 1 << 12;

/// The event queue, ordered by the key `(time, sequence)`: ties at equal times go in the
/// order they were scheduled. A calendar queue (Brown 1988): a wheel
/// of fixed-length time slots covering the next ≈ 69 s, each an unsorted `Vec`, a bitmap
/// of the non-empty ones, and a binary heap for events beyond the wheel (timeouts, probe
/// intervals). The slot being drained is sorted; pushes into it keep it sorted. Pops take
/// the smallest key among the current slot, the wheel and the far heap, so the order is
/// exactly that of one heap holding everything — at O(1) per event instead of a heap's
/// O(log n) unpredictable comparisons.
pub(super) struct Queue {
    /// Absolute slot number being drained (`time >> SLOT_BITS`).
    cur: u64,
    /// The current slot's events, sorted by key, largest first (pop from the end). `cur`
    /// never passes the slot of the last event popped (a slot is advanced into only when
    /// the side event does not come first), so everything queued in it is here.
    current: Vec<(Key, Ev)>,
    /// Slot `s` (with `cur < s < cur + SLOTS`) lives at `wheel[s % SLOTS]`.
    wheel: Vec<Vec<(Key, Ev)>>,
    /// Bit `s % SLOTS` set ⇔ that wheel slot is non-empty.
    bits: Vec<u64>,
    /// Events at or past `cur + SLOTS` when scheduled.
    far: BinaryHeap<Reverse<(Key, FarEv)>>,
    /// One event kept beside the wheel (the next arrival: there is always exactly one
    /// pending), with its key: it never goes through a slot.
    side: Option<(Key, Ev)>,
    /// The first non-empty wheel slot after `cur` (`Some(None)`: none), when known:
    /// arrivals pass beside the wheel, so a bitmap scan is worth keeping between pops.
    wheel_next: Option<Option<u64>>,
    seq: u64,
}

/// An [`Ev`] in the far heap (ordered by key only: keys are unique).
#[derive(Debug, Clone, Copy)]
struct FarEv(Ev);
impl PartialEq for FarEv {
    fn eq(&self, _: &FarEv) -> bool {
        true
    }
}
impl Eq for FarEv {}
impl PartialOrd for FarEv {
    fn partial_cmp(&self, o: &FarEv) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for FarEv {
    fn cmp(&self, _: &FarEv) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// An event's key: `(time, sequence)`, compared in that order (a queued event with its key
/// takes 24 bytes). Compared as one 128-bit number: a single wide comparison instead of
/// two dependent ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    t: Nanos,
    seq: u64,
}

impl Key {
    #[inline]
    fn packed(self) -> u128 {
        (u128::from(self.t) << 64) | u128::from(self.seq)
    }
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, o: &Key) -> std::cmp::Ordering {
        self.packed().cmp(&o.packed())
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, o: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }

    #[inline]
    fn lt(&self, o: &Key) -> bool {
        self.packed() < o.packed()
    }

    #[inline]
    fn gt(&self, o: &Key) -> bool {
        self.packed() > o.packed()
    }
}

fn slot_of(key: Key) -> u64 {
    key.t >> SLOT_BITS
}

impl Queue {
    pub(super) fn new() -> Queue {
        Queue {
            cur: 0,
            current: Vec::new(),
            wheel: (0..SLOTS).map(|_| Vec::new()).collect(),
            bits: vec![0; SLOTS / 64],
            far: BinaryHeap::new(),
            side: None,
            wheel_next: Some(None),
            seq: 0,
        }
    }

    /// Whether an event waits beside the wheel (tests).
    #[cfg(test)]
    pub(super) fn has_side(&self) -> bool {
        self.side.is_some()
    }

    /// The key of an event scheduled now for `t`.
    fn key(&mut self, t: Nanos) -> Key {
        let key = Key { t, seq: self.seq };
        self.seq += 1;
        key
    }

    /// Schedules `ev` at `t` beside the wheel (at most one such event at a time). It is
    /// ordered with the rest exactly as if pushed.
    pub(super) fn push_side(&mut self, t: Nanos, ev: Ev) {
        debug_assert!(self.side.is_none(), "one side event at a time");
        let key = self.key(t);
        debug_assert!(slot_of(key) >= self.cur, "events are scheduled at or after now");
        self.side = Some((key, ev));
    }

    pub(super) fn push(&mut self, t: Nanos, ev: Ev) {
        let key = self.key(t);
        let s = slot_of(key);
        debug_assert!(s >= self.cur, "events are scheduled at or after now");
        if s <= self.cur {
            // keys only grow, so this usually lands at the front (the largest end is 0)
            let at = self.current.partition_point(|e| e.0 > key);
            self.current.insert(at, (key, ev));
        } else if s - self.cur < SLOTS as u64 {
            let w = (s % SLOTS as u64) as usize;
            self.wheel[w].push((key, ev));
            self.bits[w / 64] |= 1 << (w % 64);
            if let Some(n) = self.wheel_next {
                self.wheel_next = Some(Some(n.map_or(s, |n| n.min(s))));
            }
        } else {
            self.far.push(Reverse((key, FarEv(ev))));
        }
    }

    /// The first non-empty wheel slot after `cur`, as an absolute slot number.
    fn next_on_wheel(&self) -> Option<u64> {
        let start = ((self.cur + 1) % SLOTS as u64) as usize;
        let words = SLOTS / 64;
        // the first word masked from `start`, then whole words around the wheel
        let (w0, b0) = (start / 64, start % 64);
        let first = self.bits[w0] & (!0u64 << b0);
        let found = if first != 0 {
            Some(w0 * 64 + first.trailing_zeros() as usize)
        } else {
            (1..=words).find_map(|k| {
                let w = (w0 + k) % words;
                let mut x = self.bits[w];
                if k == words {
                    x &= !(!0u64 << b0); // back at the first word: only the bits before `start`
                }
                (x != 0).then(|| w * 64 + x.trailing_zeros() as usize)
            })
        }?;
        let ahead = (found + SLOTS - start) % SLOTS;
        Some(self.cur + 1 + ahead as u64)
    }

    /// Whether no queued event is due at or before `t` (the current time): besides the
    /// side event, only `current` can hold one (every queued event up to its slot is in
    /// it), and its smallest key is last.
    pub(super) fn nothing_due_by(&self, t: Nanos) -> bool {
        self.current.last().is_none_or(|e| e.0.t > t) && self.side.is_none_or(|e| e.0.t > t)
    }

    /// The earliest event and its time.
    #[inline]
    pub(super) fn pop(&mut self) -> Option<(Nanos, Ev)> {
        if self.current.is_empty() {
            self.advance();
        }
        // `current` now holds the earliest queued events, if any; the side event may
        // come before them
        match (self.current.last(), self.side) {
            (Some(&(k, ev)), side) => {
                if let Some((sk, sev)) = side.filter(|s| s.0 < k) {
                    self.side = None;
                    return Some((sk.t, sev));
                }
                self.current.pop();
                Some((k.t, ev))
            }
            (None, side) => {
                self.side = None;
                side.map(|(k, ev)| (k.t, ev))
            }
        }
    }

    /// Moves the next non-empty slot (of the wheel or the far heap) into the empty
    /// `current`, sorted, and makes it the current slot — unless the side event comes
    /// before it (or nothing is queued): then `current` stays empty.
    fn advance(&mut self) {
        let wheel = match self.wheel_next {
            Some(w) => w,
            None => {
                let w = self.next_on_wheel();
                self.wheel_next = Some(w);
                w
            }
        };
        let far = self.far.peek().map(|Reverse((k, _))| slot_of(*k));
        let next = match (wheel, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some((k, _)) = self.side {
            if next.is_none_or(|n| slot_of(k) < n) {
                // the side event comes first, alone in its slot: that slot is current
                // (`max` only for clarity: `cur` never passes the time popped last)
                self.cur = self.cur.max(slot_of(k));
                return;
            }
        }
        let Some(next) = next else { return };
        self.cur = next;
        if wheel == Some(next) {
            let w = (next % SLOTS as u64) as usize;
            self.bits[w / 64] &= !(1 << (w % 64));
            std::mem::swap(&mut self.current, &mut self.wheel[w]);
            self.wheel_next = None;
        }
        while let Some(Reverse((k, _))) = self.far.peek() {
            if slot_of(*k) != next {
                break;
            }
            if let Some(Reverse((k, FarEv(ev)))) = self.far.pop() {
                self.current.push((k, ev));
            }
        }
        if self.current.len() > 1 {
            self.current.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        }
    }

    /// Schedules `ev` at `at`, or hands it back in `now` to run at once when it is provably
    /// the very next event: due now (`at == t`), nothing else handed back yet, and nothing
    /// queued at or before `t` (everything queued has a smaller sequence number, so a queued
    /// event at `t` would have to go first). Same order as queueing it, without the queue.
    pub(super) fn sched(&mut self, now: &mut Option<Ev>, t: Nanos, at: Nanos, ev: Ev) {
        if at == t && now.is_none() && self.nothing_due_by(t) {
            *now = Some(ev);
        } else {
            self.push(at, ev);
        }
    }
}
