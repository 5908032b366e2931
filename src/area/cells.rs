//! Value cells: the `AtomicU64` words of a series record that every process
//! adds to. What a cell means is its type module's business (`metrics/`);
//! here is only how an `f64` held in one as bits is added to, shared by the
//! eager updates of `metrics/` and the flush of `buffer`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Add `v` to the f64 stored in `cell` (compare-exchange loop).
#[inline]
pub(crate) fn atomic_add_f64(cell: &AtomicU64, v: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(x) => cur = x,
        }
    }
}
