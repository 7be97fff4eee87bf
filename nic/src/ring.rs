//! Handing fixed-size values (the engine's events, a decoder's messages) from one pinned thread to another: a
//! preallocated single-producer single-consumer ring, `rtrb`'s lock-free one underneath.
//!
//! The producer is a matcher that must never block in the middle of an input, and an input produces a bounded
//! but variable number of values. So back-pressure is a value, asked for at the input boundary:
//! [`Sender::try_reserve`] says whether the ring has room for the most an ordinary input produces, and a caller
//! that gets [`Full`] stops taking input (and counts it) until the consumer catches up. Within an input,
//! [`Sender::push`] only waits if an input produced more than its reservation (a cascade of triggered stops, say);
//! such waits are counted, never hidden.
//!
//! ```text
//!   matcher core                                 publisher core
//!   try_reserve(n)?  apply → push, push, …  ──▶  drain(|v| encode / publish v)
//!   (Full: stop taking input)                     (returns how many it took)
//! ```

/// The ring has less room than asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A ring of `capacity` slots (at least 1), all allocated now.
pub fn channel<T: Copy>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity.max(1));
    (
        Sender {
            tx,
            refused: 0,
            waits: 0,
        },
        Receiver { rx },
    )
}

pub struct Sender<T> {
    tx: rtrb::Producer<T>,
    refused: u64,
    waits: u64,
}

impl<T: Copy> Sender<T> {
    /// Whether `n` values fit now. Refusals are counted ([`Sender::refused`]).
    #[inline]
    pub fn try_reserve(&mut self, n: usize) -> Result<(), Full> {
        // `cached_slots` reads the consumer's position only when the cached view says too little.
        if self.tx.cached_slots() >= n || self.tx.slots() >= n {
            Ok(())
        } else {
            self.refused += 1;
            Err(Full)
        }
    }

    /// Queues `v`, waiting for the consumer only when the ring is full despite the caller's reservation
    /// ([`Sender::waits`] counts each such push). Returns `Err(v)` only if the consumer is gone.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), T> {
        let mut v = match self.tx.push(v) {
            Ok(()) => return Ok(()),
            Err(rtrb::PushError::Full(v)) => v,
        };
        self.waits += 1;
        loop {
            if self.tx.is_abandoned() {
                return Err(v);
            }
            std::hint::spin_loop();
            match self.tx.push(v) {
                Ok(()) => return Ok(()),
                Err(rtrb::PushError::Full(back)) => v = back,
            }
        }
    }

    /// Queues `v` if there is room; never waits.
    #[inline]
    pub fn try_push(&mut self, v: T) -> Result<(), T> {
        self.tx.push(v).map_err(|rtrb::PushError::Full(v)| v)
    }

    /// Reservations refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Pushes that had to wait for the consumer since the start.
    pub fn waits(&self) -> u64 {
        self.waits
    }

    pub fn capacity(&self) -> usize {
        self.tx.buffer().capacity()
    }
}

pub struct Receiver<T> {
    rx: rtrb::Consumer<T>,
}

impl<T: Copy> Receiver<T> {
    /// Hands every value queued now to `f`, oldest first, and frees their slots at once. Returns how many.
    #[inline]
    pub fn drain(&mut self, mut f: impl FnMut(&T)) -> usize {
        let n = self.rx.slots();
        let Ok(chunk) = self.rx.read_chunk(n) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        a.iter().chain(b).for_each(&mut f);
        chunk.commit_all();
        n
    }

    /// Whether the sender is gone (after which [`Receiver::drain`] still returns what it queued).
    pub fn is_abandoned(&self) -> bool {
        self.rx.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_refuses_what_does_not_fit_and_counts_it() {
        let (mut tx, mut rx) = channel::<u32>(4);
        assert_eq!(tx.try_reserve(4), Ok(()));
        for v in 0..3 {
            tx.push(v).unwrap();
        }
        assert_eq!(tx.try_reserve(2), Err(Full));
        assert_eq!(tx.try_reserve(1), Ok(()));
        assert_eq!(tx.try_push(3), Ok(()));
        assert_eq!(tx.try_push(4), Err(4));
        assert_eq!(tx.refused(), 1);
        let mut got = Vec::new();
        assert_eq!(rx.drain(|&v| got.push(v)), 4);
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(tx.try_reserve(4), Ok(()));
        assert_eq!(tx.waits(), 0);
    }

    #[test]
    fn values_cross_threads_in_order_when_the_ring_is_much_smaller_than_the_stream() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = channel::<u64>(64);
        let consumer = std::thread::spawn(move || {
            let (mut next, mut sum) = (0u64, 0u64);
            while next < N {
                rx.drain(|&v| {
                    assert_eq!(v, next, "out of order");
                    next += 1;
                    sum = sum.wrapping_add(v);
                });
            }
            sum
        });
        for v in 0..N {
            tx.push(v).unwrap();
        }
        assert_eq!(consumer.join().unwrap(), N * (N - 1) / 2);
        // A ring of 64 against a producer that never reserves: it must have waited, and said so.
        assert!(tx.waits() > 0);
    }

    #[test]
    fn a_push_to_a_departed_consumer_returns_the_value() {
        let (mut tx, rx) = channel::<u8>(1);
        tx.push(1).unwrap();
        drop(rx);
        assert_eq!(tx.push(2), Err(2));
    }
}
