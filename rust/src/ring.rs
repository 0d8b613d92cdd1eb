//! A single-producer/single-consumer ring buffer of audio samples, shareable
//! between threads (e.g. a sounddevice callback and an asyncio loop).
//!
//! # Why it is safe and (nearly) lock-free
//!
//! The storage is an [`rtrb`] ring: a wait-free SPSC queue whose `Producer` and
//! `Consumer` halves synchronise only through two atomic indices. rtrb gives
//! each half as an owned value that needs `&mut` to use, while a Python object is
//! shared (`&self`) by every thread that holds a reference. So each half sits in
//! its own `Mutex`:
//!
//! - the writer only ever takes the producer lock and the reader only the
//!   consumer lock, so in SPSC use the two sides never wait for each other and
//!   each lock is uncontended (one atomic swap to take, one to release);
//! - a second writer (or reader) thread is still *safe*, it just queues on that
//!   side's lock;
//! - the one exception is `overflow="drop_oldest"`: making room means discarding
//!   unread samples, which is a consumer operation, so an overflowing write takes
//!   the consumer lock as well (always producer first, then consumer, so there
//!   is no lock-order inversion) for the O(1) index advance. `clear()` and
//!   `reset()` follow the same order.
//!
//! Locks are never held while acquiring or releasing the GIL: big reads/writes
//! release the GIL *before* locking and small ones keep it throughout, so a
//! thread blocked on a ring lock never holds something the lock holder needs.
//!
//! Counters (`written`, `consumed`, `overflows`) are atomics updated under the
//! relevant lock, so readers see them without locking. `consumed` counts only
//! samples handed to the reader, which makes `consumed / rate` the position
//! actually played out — what barge-in handling needs to truncate a response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rtrb::{Consumer, Producer};

use crate::pcm::i16_to_f32;
use crate::sync::lock;

mod py;

pub use py::RingBuffer;

/// What `write` does when the samples do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Discard the oldest unread samples to make room (live audio: latest wins).
    DropOldest,
    /// Store what fits and discard the rest of the new samples.
    DropNewest,
    /// Store nothing and report [`Full`].
    Error,
}

impl Overflow {
    pub fn name(self) -> &'static str {
        match self {
            Overflow::DropOldest => "drop_oldest",
            Overflow::DropNewest => "drop_newest",
            Overflow::Error => "error",
        }
    }
}

/// `write` under [`Overflow::Error`] found too little room; nothing was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    pub needed: usize,
    pub free: usize,
}

/// Sample types the ring stores and converts between, with the crate's
/// float/PCM16 rule (`crate::pcm`).
pub trait Sample: Copy + Default + Send + Sync + 'static {
    fn from_i16s(src: &[i16], dst: &mut [Self]);
    fn from_f32s(src: &[f32], dst: &mut [Self]);
    fn from_f64s(src: &[f64], dst: &mut [Self]);
    /// Convert `src` (of this type) into `dst` (of another).
    fn convert_into<U: Sample>(src: &[Self], dst: &mut [U]);
}

impl Sample for i16 {
    fn from_i16s(src: &[i16], dst: &mut [i16]) {
        dst.copy_from_slice(src);
    }
    /// `crate::pcm::f32_to_i16`, vectorised (see `crate::wire::convert_f32`).
    fn from_f32s(src: &[f32], dst: &mut [i16]) {
        crate::wire::convert_f32(src, dst);
    }
    fn from_f64s(src: &[f64], dst: &mut [i16]) {
        crate::wire::convert_f64(src, dst);
    }
    fn convert_into<U: Sample>(src: &[i16], dst: &mut [U]) {
        U::from_i16s(src, dst);
    }
}

impl Sample for f32 {
    fn from_i16s(src: &[i16], dst: &mut [f32]) {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, &s)| *d = i16_to_f32(s));
    }
    fn from_f32s(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn from_f64s(src: &[f64], dst: &mut [f32]) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s as f32);
    }
    fn convert_into<U: Sample>(src: &[f32], dst: &mut [U]) {
        U::from_f32s(src, dst);
    }
}

impl Sample for f64 {
    fn from_i16s(src: &[i16], dst: &mut [f64]) {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, &s)| *d = f64::from(i16_to_f32(s)));
    }
    fn from_f32s(src: &[f32], dst: &mut [f64]) {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, &s)| *d = f64::from(s));
    }
    fn from_f64s(src: &[f64], dst: &mut [f64]) {
        dst.copy_from_slice(src);
    }
    fn convert_into<U: Sample>(src: &[f64], dst: &mut [U]) {
        U::from_f64s(src, dst);
    }
}

/// The pure-Rust ring: `T` is the stored sample type.
pub struct SampleRing<T> {
    producer: Mutex<Producer<T>>,
    consumer: Mutex<Consumer<T>>,
    capacity: usize,
    policy: Overflow,
    written: AtomicU64,
    consumed: AtomicU64,
    overflows: AtomicU64,
    /// Samples that left the ring unread (`clear`, `DropOldest` evictions):
    /// `written - skipped` is the `consumed` count at which the next written
    /// sample will be handed out.
    skipped: AtomicU64,
}

// Locks are poison-tolerant (`crate::sync::lock`): every critical section
// leaves the rtrb half consistent, since its indices move atomically.

impl<T: Sample> SampleRing<T> {
    pub fn new(capacity: usize, policy: Overflow) -> Self {
        let (producer, consumer) = rtrb::RingBuffer::new(capacity);
        SampleRing {
            producer: Mutex::new(producer),
            consumer: Mutex::new(consumer),
            capacity,
            policy,
            written: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn policy(&self) -> Overflow {
        self.policy
    }

    /// Samples ready to read.
    pub fn available(&self) -> usize {
        lock(&self.consumer).slots()
    }

    /// Room for samples before the overflow policy applies.
    pub fn free(&self) -> usize {
        lock(&self.producer).slots()
    }

    /// Total samples stored by `write` (including ones later dropped or cleared).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Total samples handed to the reader.
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Acquire)
    }

    /// Total samples lost to overflow (old ones evicted or new ones refused).
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Acquire)
    }

    /// Total samples removed unread (cleared or evicted).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Acquire)
    }

    /// The `consumed` count at which the next written sample will be read
    /// (exact on the producer's thread, which alone writes, clears or evicts).
    pub fn read_position_of_next(&self) -> u64 {
        self.written() - self.skipped()
    }

    /// Store `src`, converted to `T`; returns how many of its samples were
    /// stored (under `DropOldest` the last `min(len, capacity)`).
    pub fn write<S: Sample>(&self, src: &[S]) -> Result<usize, Full> {
        let mut producer = lock(&self.producer);
        let free = producer.slots();
        let (src, dropped_new) = match self.policy {
            _ if src.len() <= free => (src, 0),
            Overflow::Error => {
                return Err(Full {
                    needed: src.len(),
                    free,
                })
            }
            Overflow::DropNewest => {
                let (head, tail) = src.split_at(free);
                (head, tail.len())
            }
            Overflow::DropOldest => {
                // Only the newest `capacity` samples can survive this write.
                let keep = src.len().min(self.capacity);
                let (old, new) = src.split_at(src.len() - keep);
                let mut consumer = lock(&self.consumer);
                // With both locks held the free count cannot change under us.
                let evict = keep.saturating_sub(producer.slots());
                if let Ok(chunk) = consumer.read_chunk(evict) {
                    chunk.commit_all();
                    self.skipped.fetch_add(evict as u64, Ordering::AcqRel);
                }
                drop(consumer);
                self.overflows
                    .fetch_add((old.len() + evict) as u64, Ordering::AcqRel);
                (new, 0)
            }
        };
        let stored = push(&mut producer, src);
        self.written.fetch_add(stored as u64, Ordering::AcqRel);
        if dropped_new > 0 || stored < src.len() {
            let lost = dropped_new + (src.len() - stored);
            self.overflows.fetch_add(lost as u64, Ordering::AcqRel);
        }
        Ok(stored)
    }

    /// Move up to `dst.len()` samples into the start of `dst`, converted to `U`;
    /// returns how many.
    pub fn read_into<U: Sample>(&self, dst: &mut [U]) -> usize {
        let mut consumer = lock(&self.consumer);
        let n = dst.len().min(consumer.slots());
        let Ok(chunk) = consumer.read_chunk(n) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        let (da, rest) = dst.split_at_mut(a.len().min(n));
        T::convert_into(a, da);
        T::convert_into(b, rest.get_mut(..b.len()).unwrap_or_default());
        chunk.commit_all();
        self.consumed.fetch_add(n as u64, Ordering::AcqRel);
        n
    }

    /// Discard every unread sample (not counted as consumed); returns how many.
    pub fn clear(&self) -> usize {
        let _producer = lock(&self.producer);
        let mut consumer = lock(&self.consumer);
        let n = consumer.slots();
        if let Ok(chunk) = consumer.read_chunk(n) {
            chunk.commit_all();
            self.skipped.fetch_add(n as u64, Ordering::AcqRel);
        }
        n
    }

    /// `clear()` and zero the counters, atomically with respect to both sides.
    pub fn reset(&self) {
        let _producer = lock(&self.producer);
        let mut consumer = lock(&self.consumer);
        let n = consumer.slots();
        if let Ok(chunk) = consumer.read_chunk(n) {
            chunk.commit_all();
        }
        self.written.store(0, Ordering::Release);
        self.consumed.store(0, Ordering::Release);
        self.overflows.store(0, Ordering::Release);
        self.skipped.store(0, Ordering::Release);
    }
}

/// Copy (converting) as much of `src` as fits; returns how many were stored.
fn push<T: Sample, S: Sample>(producer: &mut Producer<T>, src: &[S]) -> usize {
    let n = src.len().min(producer.slots());
    let Ok(mut chunk) = producer.write_chunk(n) else {
        return 0;
    };
    let (a, b) = chunk.as_mut_slices();
    let (sa, sb) = src.split_at(a.len().min(n));
    S::convert_into(sa, a);
    S::convert_into(sb, b.get_mut(..sb.len()).unwrap_or_default());
    chunk.commit_all();
    n
}

#[cfg(test)]
mod tests;

pub use py::register;
