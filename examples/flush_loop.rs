//! A flush probe for instruction counts (`valgrind --tool=callgrind
//! --toggle-collect='promshm::buffer::flush'`):
//! `flush_loop [series] [clean flushes]`. One thread buffers one update
//! into each of `series` buffered counter series, flushes them once
//! (dirty), then flushes `clean flushes` times with nothing changed.

use promshm::{Area, AreaOptions, Opts};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let clean: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let area = Area::anonymous(&AreaOptions::with_pages((n / 40 + 256) as u32)).expect("area");
    let fam = area
        .registry()
        .counter(Opts::new("jobs", "Jobs.").labels(&["id"]))
        .expect("family");
    let series: Vec<_> = (0..n)
        .map(|i| fam.labels(&[&i.to_string()]).expect("series"))
        .collect();
    for c in &series {
        c.inc();
    }
    let dirty = promshm::flush();
    let mut entries = 0;
    for _ in 0..clean {
        let s = promshm::flush();
        assert_eq!(s.dirty_series, 0);
        entries += s.entries;
    }
    println!("dirty {} entries {entries}", dirty.dirty_series);
}
