//! Counter: a monotonic total (`_total`), buffered per thread by default.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::format::ser;
use crate::buffer;
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// The counter's cell layout (docs/FORMAT.md §8.2): the total is
/// `INT_CELL + FRAC_CELL`. Whole increments ([`whole`]) go to the `u64`
/// [`INT_CELL`] with one `fetch_add`; the others to the `f64` [`FRAC_CELL`],
/// the buffer's f64 cell (a flush adds it as an `f64`, the integer cell as a
/// `u64`). The exemplar link is the last cell.
const FRAC_CELL: usize = buffer::F64_CELL;
/// The counter's `u64` cell: the sum of its whole increments.
const INT_CELL: usize = 1;
/// Cells of a counter series before the exemplar link.
pub(crate) const VALUE_CELLS: usize = 2;

/// Increments at most this (`2^53`, exclusive) that are whole numbers go
/// to the integer cell: every one converts exactly.
const WHOLE_LIMIT: f64 = 9_007_199_254_740_992.0;

/// `v` (`>= 0`, not NaN) as a whole number for the integer cell, if it is one
/// below [`WHOLE_LIMIT`].
#[inline(always)]
fn whole(v: f64) -> Option<u64> {
    let n = v as u64;
    (v < WHOLE_LIMIT && n as f64 == v).then_some(n)
}

/// The total of an integer and an `f64` cell.
#[inline]
fn sum_of(int: u64, frac: f64) -> f64 {
    int as f64 + frac
}

/// A counter series handle. Cheap to clone; updates never block.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// jobs.inc();
/// jobs.add(2.5)?;
/// assert!(jobs.add(-1.0).is_err()); // a counter only goes up
/// promshm::flush(); // buffered per thread until a flush (or a render)
/// assert_eq!(jobs.get(), 3.5);
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Counter {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Counter, MetricType::Counter);

impl Counter {
    /// Add 1.
    #[inline]
    pub fn inc(&self) {
        self.add_int(1);
    }

    /// Add `v`, which must be `>= 0` and not NaN.
    #[inline]
    pub fn add(&self, v: f64) -> Result<()> {
        check_increment(v)?;
        self.add_unchecked(v);
        Ok(())
    }

    #[inline(always)]
    fn add_unchecked(&self, v: f64) {
        match whole(v) {
            Some(n) => self.add_int(n),
            None => self.add_frac(v),
        }
    }

    /// Add the whole number `n` to the integer cell (or this thread's
    /// buffer of it).
    #[inline(always)]
    fn add_int(&self, n: u64) {
        if self.series.eager {
            let _w = self.series.writing();
            if let Some(c) = self.series.cell(INT_CELL) {
                c.fetch_add(n, Ordering::Relaxed);
            }
        } else {
            buffer::add_u64(&*self.series, INT_CELL, n);
        }
    }

    /// Add `v` to the `f64` cell (or this thread's buffer of it).
    #[inline]
    fn add_frac(&self, v: f64) {
        if self.series.eager {
            let _w = self.series.writing();
            if let Some(c) = self.series.cell(FRAC_CELL) {
                atomic_add_f64(c, v);
            }
        } else {
            buffer::add_f64(&*self.series, v);
        }
    }

    /// Add `v` (as [`add`](Self::add): buffered or eager) and store the
    /// exemplar `labels` with it, e.g. `&[("trace_id", "abc")]`, written
    /// through to the area: the series' newest exemplar, for every process.
    /// Invalid labels (see [`exemplar`](super::exemplar)) change nothing;
    /// an error storing the exemplar (area lock, area full) comes after the
    /// increment was counted.
    pub fn add_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<()> {
        let ex = super::exemplar::encode(labels)?;
        self.add(v)?;
        super::exemplar::store(&self.series, 0, v, ex)
    }

    /// Add 1 with an exemplar (see [`add_with_exemplar`](Self::add_with_exemplar)).
    pub fn inc_with_exemplar(&self, labels: &[(&str, &str)]) -> Result<()> {
        self.add_with_exemplar(1.0, labels)
    }

    /// Store an exemplar of `value` (the increment it goes with, counted
    /// already) as the series' newest, without adding anything, timestamped `timestamp` (Unix seconds; `None`: now).
    pub fn set_exemplar(
        &self,
        value: f64,
        timestamp: Option<f64>,
        labels: &[(&str, &str)],
    ) -> Result<()> {
        super::exemplar::set(&self.series, value, timestamp, labels)
    }

    /// Reset the total to 0 for every process, with `_created` now: the one
    /// cell every process adds to is swapped to 0, so every handle (in any
    /// process) keeps counting from there; increments still in another
    /// thread's or process's buffer land after the reset. Flush first to
    /// count this thread's earlier increments before it. A handle whose
    /// series was removed changes nothing (its record may be another's now).
    pub fn reset(&self) {
        let _w = self.series.writing();
        let (Some(int), Some(frac)) = (self.series.cell(INT_CELL), self.series.cell(FRAC_CELL))
        else {
            return;
        };
        int.swap(0, Ordering::AcqRel);
        frac.swap(0f64.to_bits(), Ordering::AcqRel);
        if let Some(t) = self.series.area().u64_at(self.series.off + ser::CREATED) {
            t.store(crate::process::now_secs().to_bits(), Ordering::Relaxed);
        }
    }

    /// Benchmark support: the eager update as it was before generations
    /// (no check that the series is still the handle's). Do not use.
    #[doc(hidden)]
    #[inline]
    pub fn __eager_add_without_generation_check(&self, v: f64) {
        let area = self.series.area();
        match whole(v) {
            Some(n) => {
                if let Some(c) = area.u64_at(self.series.cells + INT_CELL * 8) {
                    c.fetch_add(n, Ordering::Relaxed);
                }
            }
            None => {
                if let Some(c) = area.u64_at(self.series.cells + FRAC_CELL * 8) {
                    atomic_add_f64(c, v);
                }
            }
        }
    }

    /// The total in the area (what has been flushed, by every process).
    pub fn get(&self) -> f64 {
        let load = |i| {
            self.series
                .cell(i)
                .map_or(0, |c: &std::sync::atomic::AtomicU64| {
                    c.load(Ordering::Relaxed)
                })
        };
        sum_of(load(INT_CELL), f64::from_bits(load(FRAC_CELL)))
    }
}

impl super::Family<Counter> {
    /// Add 1 to the series with these label values (as
    /// [`labels`](super::Family::labels)), creating it if no process has,
    /// without a series handle: a series this family resolved before, that
    /// this thread has updated before, is found and buffered with no
    /// validation, allocation or reference count. Otherwise (the thread's
    /// first update of it, an eager family) this resolves a handle and
    /// updates through it.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let requests = area
    ///     .registry()
    ///     .counter(Opts::new("requests", "Requests.").labels(&["method", "code"]))?;
    /// requests.inc_labels(&["GET", "200"])?;
    /// requests.add_labels(&["GET", "200"], 2.0)?;
    /// assert!(requests.add_labels(&["GET", "200"], -1.0).is_err());
    /// promshm::flush();
    /// assert_eq!(requests.labels(&["GET", "200"])?.get(), 3.0);
    /// # Ok::<(), promshm::Error>(())
    /// ```
    #[inline]
    pub fn inc_labels(&self, values: &[&str]) -> Result<()> {
        self.add_labels_unchecked(values, 1.0)
    }

    /// Add `v` (`>= 0`, not NaN) to the series with these label values,
    /// without a series handle (see [`inc_labels`](Self::inc_labels)).
    #[inline]
    pub fn add_labels(&self, values: &[&str], v: f64) -> Result<()> {
        check_increment(v)?;
        self.add_labels_unchecked(values, v)
    }

    #[inline]
    fn add_labels_unchecked(&self, values: &[&str], v: f64) -> Result<()> {
        if !self.inner.eager
            && self.inner.try_buffered(values, |b| match whole(v) {
                Some(n) => buffer::try_add_u64(b, INT_CELL, n),
                None => buffer::try_add_f64(b, v),
            })
        {
            return Ok(());
        }
        self.labels(values)?.add_unchecked(v);
        Ok(())
    }
}

/// `Ok` for a counter increment `v` (`>= 0`, not NaN).
#[inline]
fn check_increment(v: f64) -> Result<()> {
    if v.is_nan() || v < 0.0 {
        return Err(Error::InvalidValue {
            what: "counter increment",
            value: v,
        });
    }
    Ok(())
}

impl Counter {
    /// A [`LocalCounter`] on this series: a caller-owned pending delta that
    /// [`LocalCounter::inc`] and [`LocalCounter::add`] change with a plain
    /// add, and that [`LocalCounter::flush`] (or dropping it) hands to this
    /// counter.
    pub fn local(&self) -> LocalCounter {
        LocalCounter {
            incs: 0,
            pending: 0.0,
            counter: self.clone(),
            generation: crate::process::fork_generation(),
            _single_thread: PhantomData,
        }
    }
}

/// A counter's local handle, like the `prometheus` crate's `LocalCounter`:
/// a pending delta owned by the caller (neither `Send` nor `Sync`), so an
/// increment is a plain add with no atomic and no buffer lookup. `inc` adds
/// to an integer count (an integer add: no floating-point latency chain),
/// `add` to an `f64`; a flush hands both to the counter (the count to its
/// integer cell).
///
/// Nothing reaches the series until [`flush`](LocalCounter::flush), which
/// adds the pending delta through the counter's normal update path (the
/// thread's buffer or, on an eager family, the area; a removed series takes
/// nothing) and zeroes it; dropping the value flushes too. A local counter
/// belongs to the process that made it: in a child after `fork`, its first
/// flush drops what is pending (what the parent held is the parent's to
/// flush), so make local counters after the fork.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// let mut local = jobs.local();
/// local.inc();
/// local.add(2.5)?;
/// assert!(local.add(-1.0).is_err()); // a counter only goes up
/// assert_eq!(local.pending(), 3.5);
/// promshm::flush();
/// assert_eq!(jobs.get(), 0.0); // not flushed yet: still local
/// local.flush();
/// assert_eq!(local.pending(), 0.0);
/// promshm::flush(); // the counter is buffered per thread, as always
/// assert_eq!(jobs.get(), 3.5);
/// drop(local); // dropping flushes too (nothing left here)
/// # Ok::<(), promshm::Error>(())
/// ```
pub struct LocalCounter {
    incs: u64,
    pending: f64,
    counter: Counter,
    generation: u32,
    /// Neither `Send` nor `Sync`: one thread's value.
    _single_thread: PhantomData<*const ()>,
}

impl LocalCounter {
    /// Add 1 to the pending delta.
    #[inline]
    pub fn inc(&mut self) {
        self.incs += 1;
    }

    /// Add `v`, which must be `>= 0` and not NaN, to the pending delta.
    #[inline]
    pub fn add(&mut self, v: f64) -> Result<()> {
        check_increment(v)?;
        self.pending += v;
        Ok(())
    }

    /// What was added since the last flush.
    pub fn pending(&self) -> f64 {
        self.incs as f64 + self.pending
    }

    /// The counter this local handle flushes to.
    pub fn counter(&self) -> &Counter {
        &self.counter
    }

    /// Add the pending delta to the counter and zero it (see the type's
    /// docs for a fork).
    pub fn flush(&mut self) {
        let (incs, pending) = (
            std::mem::take(&mut self.incs),
            std::mem::take(&mut self.pending),
        );
        self.counter
            .__flush_local(incs, pending, &mut self.generation);
    }
}

impl Drop for LocalCounter {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Counter {
    /// C API support (`promshm_local_counter`): the fork generation a local
    /// delta is counted in, for [`Counter::__flush_local`]. Do not use.
    #[doc(hidden)]
    pub fn __local_generation() -> u32 {
        crate::process::fork_generation()
    }

    /// C API support: add `incs` (to the integer cell) and `pending`,
    /// counted in fork generation `generation`, unless that is another
    /// process's (then they are dropped, the parent's to flush); `generation`
    /// becomes this process's. What [`LocalCounter::flush`] does. Do not use.
    #[doc(hidden)]
    pub fn __flush_local(&self, incs: u64, pending: f64, generation: &mut u32) {
        if !crate::process::claim_generation(generation) {
            return;
        }
        if incs != 0 {
            self.add_int(incs);
        }
        if pending != 0.0 {
            self.add_unchecked(pending);
        }
    }
}

/// The counter's total (cells [`INT_CELL`] + [`FRAC_CELL`]) as the render
/// reads it: `None` if it is damaged (the `f64` cell NaN or negative).
#[inline]
fn total(view: &super::view::SeriesCells<'_>) -> Option<f64> {
    let frac = view.cell_f64(FRAC_CELL);
    (!frac.is_nan() && frac >= 0.0).then(|| sum_of(view.cell(INT_CELL), frac))
}

/// The point [`emit`] writes for a series without an exemplar, read the
/// same way (a sane total, the series still the one the walk saw), for
/// the render's kept-text path; `None` if the series has an exemplar or
/// does not read (then `emit` reads it and says why).
#[inline(always)]
pub(crate) fn plain_point(
    view: &super::view::SeriesCells<'_>,
    shape: &super::shape::Shape,
) -> Option<crate::encoding::Point<'static>> {
    let value = total(view)?;
    if super::exemplar::linked(view, shape) || !view.same() {
        return None;
    }
    Some(crate::encoding::Point::Counter {
        value,
        created: view.created(),
    })
}

/// Render one counter series: its [`total`].
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> Result<super::view::Emitted> {
    use super::view::Emitted;
    let Some(value) = total(view) else {
        return Ok(Emitted::Bad);
    };
    super::exemplar::read(view, cx.shape, &mut cx.sc.exemplars);
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    let created = view.created();
    cx.enc.point_with_exemplars(
        cx.desc,
        cx.labels,
        &crate::encoding::Point::Counter { value, created },
        &cx.sc.exemplars,
    )?;
    Ok(Emitted::Written)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::area::format::ser;
    use crate::{Area, AreaOptions, Opts};

    /// Whole increments below `2^53` go to the integer cell, exactly; the
    /// others (fractions, `2^53` and up, infinity) to the f64 cell.
    #[test]
    fn whole_increments_are_the_exact_ones_below_2_pow_53() {
        use super::whole;
        for (v, want) in [
            (0.0, Some(0)),
            (1.0, Some(1)),
            (12345.0, Some(12345)),
            (9_007_199_254_740_991.0, Some((1 << 53) - 1)),
        ] {
            assert_eq!(whole(v), want, "{v}");
        }
        for v in [
            0.5,
            1e-300,
            1.0 + f64::EPSILON,
            9_007_199_254_740_992.0,
            1e300,
        ] {
            assert_eq!(whole(v), None, "{v}");
        }
        assert_eq!(whole(f64::INFINITY), None);
    }

    /// `inc_labels`/`add_labels` count exactly what handles would, for
    /// buffered and eager families, with and without constant labels: on a
    /// series new to the process and to a thread, again (the handle-less
    /// hit), after the series was removed (a fresh one), from other
    /// threads; errors change nothing.
    #[test]
    fn updates_by_label_values_without_a_handle() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let consts = area.registry().with_const_labels(&[("env", "p")]).unwrap();
        for (i, (reg, eager)) in [
            (area.registry(), false),
            (area.registry(), true),
            (consts.clone(), false),
            (consts, true),
        ]
        .into_iter()
        .enumerate()
        {
            let f = reg
                .counter(
                    Opts::new(format!("by_values_{i}"), "h")
                        .labels(&["a", "b"])
                        .eager(eager),
                )
                .unwrap();
            let long = "a value longer than the key words keep whole";
            for values in [["x", "y"], ["xy", ""], [long, "y"]] {
                f.inc_labels(&values).unwrap();
                f.add_labels(&values, 2.5).unwrap();
                f.inc_labels(&values).unwrap();
                assert!(f.add_labels(&values, -1.0).is_err());
                assert!(f.add_labels(&values, f64::NAN).is_err());
                std::thread::scope(|s| {
                    s.spawn(|| f.inc_labels(&values).unwrap());
                });
                crate::flush();
                assert_eq!(f.labels(&values).unwrap().get(), 5.5, "{i} {values:?}");
            }
            assert!(f.inc_labels(&["x"]).is_err());
            assert!(f.inc_labels(&["x", "y", "z"]).is_err());
            assert!(f.remove(&["x", "y"]).unwrap());
            f.inc_labels(&["x", "y"]).unwrap();
            crate::flush();
            assert_eq!(
                f.labels(&["x", "y"]).unwrap().get(),
                1.0,
                "{i}: a fresh series"
            );
            assert_eq!(f.labels(&["y", "x"]).unwrap().get(), 0.0);
        }
    }

    /// A reset zeroes the one total every handle adds to (a handle resolved
    /// before the reset keeps counting from 0) and moves `_created` on.
    #[test]
    fn reset_zeroes_the_total_for_every_handle_and_renews_created() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .counter(Opts::new("c", "A counter.").eager(true))
            .unwrap();
        let (a, b) = (fam.get().unwrap(), fam.get().unwrap());
        let created = |c: &super::Counter| {
            let t = area.inner.u64_at(c.series.off + ser::CREATED).unwrap();
            f64::from_bits(t.load(Ordering::Relaxed))
        };
        a.add(4.0).unwrap();
        b.add(6.0).unwrap();
        let before = created(&a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        b.reset();
        assert_eq!(a.get(), 0.0);
        assert!(created(&a) > before, "_created is the reset time");
        a.inc();
        b.add(2.0).unwrap();
        assert_eq!(a.get(), 3.0);
    }

    /// A local counter adds nothing until flushed; a flush adds the pending
    /// delta exactly once (buffered or eager), and a drop flushes the rest.
    #[test]
    fn local_counter_flushes_its_pending_delta_once() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        for eager in [false, true] {
            let name = if eager { "eager" } else { "buffered" };
            let fam = area
                .registry()
                .counter(Opts::new(name, "A counter.").eager(eager))
                .unwrap();
            let c = fam.get().unwrap();
            let mut local = c.local();
            for _ in 0..1000 {
                local.inc();
            }
            local.add(0.5).unwrap();
            assert!(local.add(f64::NAN).is_err());
            assert!(local.add(-1.0).is_err());
            crate::flush();
            assert_eq!(c.get(), 0.0, "{name}: nothing before the flush");
            local.flush();
            local.flush();
            crate::flush();
            assert_eq!(c.get(), 1000.5, "{name}");
            local.add(2.0).unwrap();
            drop(local);
            crate::flush();
            assert_eq!(c.get(), 1002.5, "{name}: the drop flushed");
        }
    }

    /// A local counter kept in thread-local storage is flushed when the
    /// thread exits, whatever order the thread's locals are destroyed in.
    #[test]
    fn local_counter_in_a_thread_local_counts_at_thread_exit() {
        use std::cell::RefCell;
        thread_local! {
            static LOCAL: RefCell<Option<super::LocalCounter>> = const { RefCell::new(None) };
        }
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let c = area
            .registry()
            .counter(Opts::new("tls", "A counter."))
            .unwrap()
            .get()
            .unwrap();
        // Joined explicitly: `join` waits for the thread's TLS destructors
        // (the end of a scope alone does not).
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        LOCAL.with(|l| {
                            let mut l = l.borrow_mut();
                            let l = l.get_or_insert_with(|| c.local());
                            for _ in 0..500 {
                                l.inc();
                            }
                        })
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        });
        crate::flush();
        assert_eq!(c.get(), 1000.0);
    }

    /// A local counter on a removed series adds nothing to the record, which
    /// may be another series' by then.
    #[test]
    fn local_counter_of_a_removed_series_adds_nothing() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .counter(Opts::new("gone", "A counter.").labels(&["k"]).eager(true))
            .unwrap();
        let old = fam.labels(&["a"]).unwrap();
        let mut local = old.local();
        local.add(5.0).unwrap();
        assert!(fam.remove(&["a"]).unwrap());
        let new = fam.labels(&["b"]).unwrap();
        local.flush();
        assert_eq!(new.get(), 0.0);
        assert_eq!(old.get(), 0.0);
    }

    /// Forked workers each count on their own local counter and flush: the
    /// area holds the exact total. What the parent had pending at the fork
    /// is not counted again by the children.
    #[test]
    fn local_counters_of_forked_workers_add_up_exactly() {
        const WORKERS: usize = 4;
        const PER_WORKER: usize = 25_000;
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let c = area
            .registry()
            .counter(Opts::new("forked", "A counter."))
            .unwrap()
            .get()
            .unwrap();
        let mut inherited = c.local();
        inherited.add(7.0).unwrap();
        let mut pids = Vec::new();
        for w in 0..WORKERS {
            // SAFETY: the child only counts, flushes and leaves with `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inherited.flush(); // the parent's 7: dropped here
                    let mut local = c.local();
                    for i in 0..PER_WORKER {
                        local.inc();
                        if i % 1000 == w {
                            local.flush();
                        }
                    }
                    drop(local);
                    crate::flush();
                }))
                .is_ok();
                // SAFETY: leave the child without running the harness's exit path.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            pids.push(pid);
        }
        for pid in pids {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        assert_eq!(c.get(), (WORKERS * PER_WORKER) as f64);
        drop(inherited);
        crate::flush();
        assert_eq!(c.get(), (WORKERS * PER_WORKER) as f64 + 7.0);
    }
}
