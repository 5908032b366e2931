//! Response bodies of `promshm serve` under a global memory budget.
//!
//! A render writes into [`ChunkWriter`]: 64 KiB chunks, each counted in the
//! [`Budget`] from allocation until the last reference to it is dropped
//! (after hyper has written it to the socket, or when the connection goes
//! away). So the bytes of every body in memory, rendering or waiting for a
//! slow client, add up to at most the budget. When a render needs a chunk
//! and the budget is spent, it asks its caller to make room (evict the
//! slowest stalled writer) and gives up with [`BudgetExhausted`] if none
//! frees in time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Size of one body chunk.
pub const CHUNK: usize = 64 * 1024;

/// Bytes of response bodies held in memory, all connections together.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Take `n` bytes if they fit.
    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// The most bytes that may be in use.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes in use now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A chunk's bytes, returned to the budget when dropped.
struct Chunk {
    data: Vec<u8>,
    budget: Arc<Budget>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.budget.give(CHUNK);
    }
}

/// The error a render gets when no memory can be had for its body.
#[derive(Debug)]
pub struct BudgetExhausted;

impl std::fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response memory budget exhausted")
    }
}

impl std::error::Error for BudgetExhausted {}

/// A `Write` that collects budgeted chunks.
pub struct ChunkWriter<'a> {
    budget: &'a Arc<Budget>,
    /// Called when the budget is spent: free some (true if it did something).
    make_room: &'a dyn Fn() -> bool,
    /// How long to wait for room.
    wait: Duration,
    chunks: Vec<Bytes>,
    current: Option<Vec<u8>>,
    len: usize,
    exhausted: bool,
}

impl<'a> ChunkWriter<'a> {
    pub fn new(budget: &'a Arc<Budget>, make_room: &'a dyn Fn() -> bool, wait: Duration) -> Self {
        ChunkWriter {
            budget,
            make_room,
            wait,
            chunks: Vec::new(),
            current: None,
            len: 0,
            exhausted: false,
        }
    }

    /// A fresh chunk's worth of budget, evicting and waiting if needed.
    fn reserve(&self) -> io::Result<()> {
        let deadline = Instant::now() + self.wait;
        loop {
            if self.budget.try_take(CHUNK) {
                return Ok(());
            }
            let evicted = (self.make_room)();
            if Instant::now() >= deadline {
                return Err(io::Error::other(BudgetExhausted));
            }
            // An evicted connection frees its chunks when its task is dropped.
            std::thread::sleep(Duration::from_millis(if evicted { 1 } else { 5 }));
        }
    }

    fn seal(&mut self) {
        if let Some(data) = self.current.take() {
            self.chunks.push(Bytes::from_owner(Chunk {
                data,
                budget: self.budget.clone(),
            }));
        }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether a write failed for want of budget.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// The chunks written and their total length.
    pub fn finish(mut self) -> (Vec<Bytes>, usize) {
        self.seal();
        (std::mem::take(&mut self.chunks), self.len)
    }
}

impl Drop for ChunkWriter<'_> {
    fn drop(&mut self) {
        // An unsealed chunk still holds its reservation.
        if self.current.take().is_some() {
            self.budget.give(CHUNK);
        }
    }
}

impl io::Write for ChunkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.exhausted {
            // Once refused, refuse at once (an encoder finishing on drop).
            return Err(io::Error::other(BudgetExhausted));
        }
        if self.current.as_ref().is_some_and(|c| c.len() == CHUNK) {
            self.seal();
        }
        if self.current.is_none() {
            if let Err(e) = self.reserve() {
                self.exhausted = true;
                return Err(e);
            }
            self.current = Some(Vec::with_capacity(CHUNK));
        }
        let cur = self.current.as_mut().expect("a current chunk");
        let n = buf.len().min(CHUNK - cur.len());
        cur.extend_from_slice(&buf[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Told when a body hands out data (the client accepted more) and when it
/// is dropped (the response is over).
pub trait Progress: Send + Sync {
    fn progressed(&self);
    fn finished(&self);
}

/// A response body: chunks handed to hyper one at a time, so that a client
/// that does not read leaves the rest in (budgeted) chunks, never copies.
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    progress: Option<Arc<dyn Progress>>,
}

impl ChunkBody {
    pub fn new(chunks: Vec<Bytes>, progress: Option<Arc<dyn Progress>>) -> ChunkBody {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkBody {
            chunks: chunks.into(),
            remaining,
            progress,
        }
    }

    /// A small body kept outside the budget.
    pub fn small(data: impl Into<Bytes>) -> ChunkBody {
        let data: Bytes = data.into();
        Self::new(if data.is_empty() { vec![] } else { vec![data] }, None)
    }

    /// Report to `progress` from now on.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> ChunkBody {
        self.progress = Some(progress);
        self
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }
}

impl Drop for ChunkBody {
    fn drop(&mut self) {
        if let Some(p) = &self.progress {
            p.finished();
        }
    }
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(c) => {
                self.remaining -= c.len() as u64;
                if let Some(p) = &self.progress {
                    p.progressed();
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn chunks_count_against_the_budget_until_dropped() {
        let budget = Budget::new(3 * CHUNK);
        let no_room = || false;
        let mut w = ChunkWriter::new(&budget, &no_room, Duration::from_millis(20));
        w.write_all(&vec![1u8; 2 * CHUNK + 10]).unwrap();
        assert_eq!(budget.used(), 3 * CHUNK);
        let err = w.write_all(&vec![1u8; CHUNK]).unwrap_err();
        assert!(err.get_ref().unwrap().is::<BudgetExhausted>());
        let (chunks, len) = w.finish();
        assert_eq!(len, 3 * CHUNK);
        assert_eq!(chunks.len(), 3);
        let body = ChunkBody::new(chunks, None);
        assert_eq!(body.len(), 3 * CHUNK as u64);
        assert_eq!(budget.used(), 3 * CHUNK);
        drop(body);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_failed_render_gives_everything_back() {
        let budget = Budget::new(CHUNK);
        let no_room = || false;
        let mut w = ChunkWriter::new(&budget, &no_room, Duration::from_millis(1));
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(budget.used(), 0);
    }
}
