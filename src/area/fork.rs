//! Fork safety of the in-process locks.
//!
//! A child of `fork` has one thread. If another thread of the parent held an
//! area's index mutex, its local lock, or a family's series cache at that
//! moment, the child would inherit it locked forever. So before `fork` the
//! forking thread takes all of them (in the order the rest of the crate
//! takes them: index, series caches, local lock) and releases them in both
//! parent and child right after. The data they guard is therefore never
//! copied half-updated.

use std::sync::{Arc, Once};

use super::AreaInner;
use crate::metrics::FamilyInner;

/// Addresses of the live `AreaInner`s of this process.
static AREAS: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());
/// Families whose caches `before_fork` locked, to unlock after.
static HELD: parking_lot::Mutex<Vec<Arc<FamilyInner>>> = parking_lot::Mutex::new(Vec::new());
static HOOKS: Once = Once::new();

/// Track an area that now lives at a stable address (inside its `Arc`).
pub(crate) fn register(area: &Arc<AreaInner>) {
    HOOKS.call_once(|| {
        // SAFETY: registers plain extern "C" functions with no arguments.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
    });
    AREAS.lock().push(Arc::as_ptr(area) as usize);
}

impl Drop for AreaInner {
    fn drop(&mut self) {
        let me = self as *const AreaInner as usize;
        AREAS.lock().retain(|&a| a != me);
    }
}

extern "C" fn before_fork() {
    let areas = AREAS.lock();
    let mut held = HELD.lock();
    for &addr in areas.iter() {
        // SAFETY: addresses are removed (under AREAS, which we hold) before
        // their AreaInner is freed, so each one is live here.
        let area = unsafe { &*(addr as *const AreaInner) };
        let index = area.index.lock();
        for family in index.families_handed_out() {
            family.lock_cache_for_fork();
            held.push(family);
        }
        std::mem::forget(index);
        std::mem::forget(area.local_lock.lock());
    }
    drop(held);
    std::mem::forget(areas);
}

extern "C" fn after_fork() {
    // SAFETY: `before_fork` ran in this same thread and leaked exactly these
    // guards; nothing else can have locked them since.
    unsafe {
        let held = std::mem::take(&mut *HELD.lock());
        let areas = &*AREAS.data_ptr();
        for &addr in areas.iter() {
            let area = &*(addr as *const AreaInner);
            area.local_lock.force_unlock();
        }
        for family in &held {
            family.unlock_cache_after_fork();
        }
        for &addr in areas.iter() {
            let area = &*(addr as *const AreaInner);
            area.index.force_unlock();
        }
        AREAS.force_unlock();
        drop(held);
    }
}
