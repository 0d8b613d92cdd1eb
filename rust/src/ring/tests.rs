//! Ring kernel tests, including real producer/consumer threads.

use std::sync::Arc;
use std::thread;

use super::*;

#[test]
fn fifo_with_wraparound_and_counters() {
    let ring = SampleRing::<i16>::new(5, Overflow::Error);
    assert_eq!(ring.write(&[1i16, 2, 3]), Ok(3));
    let mut out = [0i16; 2];
    assert_eq!(ring.read_into(&mut out), 2);
    assert_eq!(out, [1, 2]);
    assert_eq!(ring.write(&[4i16, 5, 6, 7]), Ok(4)); // wraps around the end
    assert_eq!((ring.available(), ring.free()), (5, 0));
    assert_eq!(ring.write(&[8i16]), Err(Full { needed: 1, free: 0 }));
    let mut out = [0i16; 8];
    assert_eq!(ring.read_into(&mut out), 5);
    assert_eq!(out[..5], [3, 4, 5, 6, 7]);
    assert_eq!(
        (ring.written(), ring.consumed(), ring.overflows()),
        (7, 7, 0)
    );
}

#[test]
fn drop_newest_keeps_what_fits() {
    let ring = SampleRing::<i16>::new(4, Overflow::DropNewest);
    assert_eq!(ring.write(&[1i16, 2, 3]), Ok(3));
    assert_eq!(ring.write(&[4i16, 5, 6]), Ok(1));
    let mut out = [0i16; 4];
    assert_eq!(ring.read_into(&mut out), 4);
    assert_eq!(out, [1, 2, 3, 4]);
    assert_eq!(ring.overflows(), 2);
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let ring = SampleRing::<i16>::new(4, Overflow::DropOldest);
    assert_eq!(ring.write(&[1i16, 2, 3]), Ok(3));
    assert_eq!(ring.write(&[4i16, 5]), Ok(2)); // evicts 1
    assert_eq!(ring.write(&[6i16, 7, 8, 9, 10, 11]), Ok(4)); // evicts all, keeps 8..11
    let mut out = [0i16; 4];
    assert_eq!(ring.read_into(&mut out), 4);
    assert_eq!(out, [8, 9, 10, 11]);
    // 1 evicted, then 4 evicted + 2 never stored.
    assert_eq!(ring.overflows(), 7);
    assert_eq!((ring.written(), ring.consumed()), (9, 4));
}

#[test]
fn converts_with_the_pcm_rule() {
    let ring = SampleRing::<i16>::new(8, Overflow::Error);
    ring.write(&[0.5f32, -1.0, 2.0, f32::NAN]).unwrap();
    let mut f = [0f32; 4];
    assert_eq!(ring.read_into(&mut f), 4);
    assert_eq!(f, [0.5, -1.0, 32767.0 / 32768.0, 0.0]);
    let fring = SampleRing::<f32>::new(8, Overflow::Error);
    fring.write(&[16384i16, -32768]).unwrap();
    fring.write(&[0.25f64]).unwrap();
    let mut i = [0i16; 3];
    assert_eq!(fring.read_into(&mut i), 3);
    assert_eq!(i, [16384, -32768, 8192]);
}

#[test]
fn clear_and_reset() {
    let ring = SampleRing::<f32>::new(8, Overflow::DropOldest);
    ring.write(&[1.0f32; 6]).unwrap();
    assert_eq!(ring.clear(), 6);
    assert_eq!(
        (ring.available(), ring.written(), ring.consumed()),
        (0, 6, 0)
    );
    ring.write(&[1.0f32; 10]).unwrap();
    ring.reset();
    assert_eq!(
        (ring.available(), ring.written(), ring.overflows()),
        (0, 0, 0)
    );
}

/// A real producer and consumer thread move 2M samples through a small ring
/// with back-pressure; every sample must arrive once, in order.
#[test]
fn spsc_threads_preserve_every_sample_in_order() {
    const TOTAL: usize = 2_000_000;
    let ring = Arc::new(SampleRing::<i16>::new(1000, Overflow::DropNewest));
    let producer = {
        let ring = Arc::clone(&ring);
        thread::spawn(move || {
            let mut next = 0usize;
            let mut chunk = Vec::new();
            while next < TOTAL {
                let n = (next % 777 + 1).min(TOTAL - next);
                chunk.clear();
                chunk.extend((next..next + n).map(|i| i as i16));
                let stored = ring.write(&chunk).unwrap();
                next += stored; // the refused tail is sent again
                if stored == 0 {
                    thread::yield_now();
                }
            }
        })
    };
    let mut expect = 0usize;
    let mut buf = vec![0i16; 513];
    while expect < TOTAL {
        let n = ring.read_into(&mut buf);
        for &v in &buf[..n] {
            assert_eq!(v, expect as i16, "sample {expect}");
            expect += 1;
        }
        if n == 0 {
            thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert_eq!(ring.consumed(), TOTAL as u64);
    assert_eq!(ring.written(), TOTAL as u64); // refused samples count as overflows
}

/// Under `drop_oldest` the reader may miss samples but never sees them out of
/// order or duplicated, and the counters add up.
#[test]
fn drop_oldest_under_concurrency_stays_ordered() {
    const TOTAL: usize = 1_000_000;
    let ring = Arc::new(SampleRing::<f32>::new(300, Overflow::DropOldest));
    let producer = {
        let ring = Arc::clone(&ring);
        thread::spawn(move || {
            let mut next = 0usize;
            while next < TOTAL {
                let n = (next % 500 + 1).min(TOTAL - next);
                let chunk: Vec<f32> = (next..next + n).map(|i| i as f32).collect();
                ring.write(&chunk).unwrap();
                next += n;
            }
        })
    };
    let mut last = -1.0f32;
    let mut buf = vec![0f32; 128];
    loop {
        let done = producer.is_finished();
        let n = ring.read_into(&mut buf);
        for &v in &buf[..n] {
            assert!(v > last, "{v} after {last}");
            last = v;
        }
        if done && n == 0 {
            break;
        }
    }
    producer.join().unwrap();
    assert_eq!(last, (TOTAL - 1) as f32);
    assert_eq!(ring.consumed() + ring.overflows(), TOTAL as u64);
}
