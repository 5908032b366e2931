//! Memory that must be given back (issue 9, item 6): a thread buffer drops
//! the entries of removed series and of families that are gone, so flush
//! cost follows the live series; an area whose handles are all dropped is
//! unmapped, its buffered updates flushed first.
//!
//! The tests of this file run one at a time (they count mappings and
//! process-wide buffer ids).

use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};

use promshm::{Area, AreaOptions, Format, Opts};

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lines of `/proc/self/maps`: one per mapping of this process.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// Register, update and remove labelled series 100,000 times (the same ten
/// label values, each removed and added again 10,000 times), while another
/// thread that updated 1,000 other series of the family sits idle after they
/// were removed. Neither this thread's buffer nor the flush (what it visits)
/// nor the process-wide buffer ids grow with the number of removals.
#[test]
fn removed_series_leave_the_thread_buffers() {
    let _serial = one_at_a_time();
    let ids_before = promshm::buffer::buffer_ids_in_use();
    let area = Area::anonymous(&AreaOptions::with_pages(4096)).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("churn", "Churn.").labels(&["v"]).eager(false))
        .unwrap();

    // An idle thread whose buffer holds 1,000 series that are then removed.
    let (done_tx, done_rx) = mpsc::channel();
    let (quit_tx, quit_rx) = mpsc::channel::<()>();
    let f2 = fam.clone();
    let idle = std::thread::spawn(move || {
        for i in 0..1000 {
            f2.labels(&[&format!("idle{i}")]).unwrap().inc();
        }
        done_tx
            .send(promshm::buffer::buffered_series_in_this_thread())
            .unwrap();
        let _ = quit_rx.recv();
    });
    assert_eq!(done_rx.recv().unwrap(), 1000);
    assert_eq!(fam.clear().unwrap(), 1000);
    // The next flush visits them once more and drops them.
    assert!(promshm::flush().entries >= 1000);
    let after_clear = promshm::flush();
    assert!(after_clear.entries <= 16, "{after_clear:?}");

    let mut most_visited = 0;
    let mut most_buffered = 0;
    let mut most_ids = 0;
    for i in 0..100_000u32 {
        let v = format!("v{}", i % 10);
        let c = fam.labels(&[&v]).unwrap();
        c.inc();
        c.inc();
        assert!(fam.remove(&[&v]).unwrap());
        most_buffered = most_buffered.max(promshm::buffer::buffered_series_in_this_thread());
        most_ids = most_ids.max(promshm::buffer::buffer_ids_in_use());
        if i % 1000 == 999 {
            most_visited = most_visited.max(promshm::flush().entries);
        }
    }
    let live = fam.labels(&["live"]).unwrap();
    live.add(5.0).unwrap();
    let stats = promshm::flush();
    assert!(
        most_buffered <= 256,
        "this thread's buffer grew to {most_buffered} entries for 10 live series"
    );
    assert!(
        most_visited <= 256,
        "a flush visited {most_visited} buffered series for at most 10 live ones"
    );
    assert!(
        most_ids <= ids_before + 64,
        "buffer ids grew from {ids_before} to {most_ids}"
    );
    assert!(stats.entries <= 64, "{stats:?}");
    assert_eq!(live.get(), 5.0, "a live series is still flushed");
    let text = area.render_to_string(Format::Prometheus).unwrap();
    assert!(text.contains("churn_total{v=\"live\"} 5"), "{text}");
    assert!(
        !text.contains("v=\"v"),
        "removed series are not rendered:\n{text}"
    );
    quit_tx.send(()).unwrap();
    idle.join().unwrap();
}

/// One area's life: create, register a buffered counter and histogram,
/// update them from this thread and from `worker` (a thread that stays
/// alive), flush or not, drop every handle.
fn area_cycle(i: u32, worker: &mpsc::Sender<promshm::Counter>, ack: &mpsc::Receiver<()>) {
    let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
    let reg = area.registry();
    let fam = reg
        .counter(Opts::new("c", "h").labels(&["a"]).eager(false))
        .unwrap();
    let c = fam.labels(&["x"]).unwrap();
    c.inc();
    let h = reg
        .histogram(Opts::new("h", "h").eager(false), &[1.0, 2.0])
        .unwrap()
        .get()
        .unwrap();
    h.observe(1.5).unwrap();
    if i % 10 == 0 {
        worker.send(c.clone()).unwrap();
        ack.recv().unwrap();
    }
    if i % 2 == 0 {
        promshm::flush();
    }
}

/// 10,000 create-use-drop cycles of an anonymous area leave the number of
/// mappings of the process where it was: nothing (handle, family, thread
/// buffer entry) keeps a dropped area mapped.
#[test]
fn an_area_whose_handles_are_all_dropped_is_unmapped() {
    let _serial = one_at_a_time();
    let (tx, rx) = mpsc::channel::<promshm::Counter>();
    let (ack_tx, ack) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        for c in rx {
            c.inc();
            drop(c);
            ack_tx.send(()).unwrap();
        }
    });
    for i in 0..100 {
        area_cycle(i, &tx, &ack);
    }
    let before = mappings();
    for i in 0..10_000 {
        area_cycle(i, &tx, &ack);
    }
    let after = mappings();
    drop(tx);
    worker.join().unwrap();
    assert!(
        after <= before + 8,
        "mappings grew from {before} to {after} over 10,000 dropped areas"
    );
}

/// Buffered updates are not lost when the last handles of a family are
/// dropped without a flush: they reach the area (seen here through a second
/// mapping of the same file) before the family's buffer entries go.
#[test]
fn dropping_the_last_handles_flushes_their_buffered_updates() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("promshm-release-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("area.promshm");
    let _ = std::fs::remove_file(&path);
    let reader = Area::create(&path, &AreaOptions::with_pages(64)).unwrap();
    let maps_of_file = || {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        let name = path.to_str().expect("utf-8 path");
        maps.lines().filter(|l| l.ends_with(name)).count()
    };
    assert_eq!(maps_of_file(), 1);
    {
        let writer = Area::open(&path, promshm::OpenMode::ReadWrite).unwrap();
        let fam = writer
            .registry()
            .counter(Opts::new("kept", "Kept.").eager(false))
            .unwrap();
        fam.get().unwrap().add(7.0).unwrap();
        let t = fam.get().unwrap();
        std::thread::spawn(move || t.add(3.0).unwrap())
            .join()
            .unwrap();
        // Dropped here without a flush.
    }
    assert_eq!(maps_of_file(), 1, "the writer's mapping is gone");
    let text = reader.render_to_string(Format::Prometheus).unwrap();
    assert!(text.contains("kept_total 10"), "{text}");
    drop(reader);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A series removed by another process (here: through a second mapping of
/// the same file, which has its own index and families, as another process
/// has) leaves this thread's buffer at the next flush.
#[test]
fn a_series_removed_elsewhere_leaves_the_buffers() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("promshm-elsewhere-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("area.promshm");
    let _ = std::fs::remove_file(&path);
    let here = Area::create(&path, &AreaOptions::with_pages(256)).unwrap();
    let there = Area::open(&path, promshm::OpenMode::ReadWrite).unwrap();
    let opts = || Opts::new("elsewhere", "E.").labels(&["v"]).eager(false);
    let fam_here = here.registry().counter(opts()).unwrap();
    let fam_there = there.registry().counter(opts()).unwrap();
    let ids_before = promshm::buffer::buffer_ids_in_use();
    for round in 0..2_000 {
        let c = fam_here.labels(&["x"]).unwrap();
        c.inc();
        promshm::flush();
        assert_eq!(c.get(), 1.0, "round {round}");
        assert!(fam_there.remove(&["x"]).unwrap());
        c.inc(); // into a removed series: never rendered
    }
    let stats = promshm::flush();
    assert!(stats.entries <= 16, "{stats:?}");
    let ids = promshm::buffer::buffer_ids_in_use();
    assert!(
        ids <= ids_before + 256,
        "buffer ids grew from {ids_before} to {ids}"
    );
    let text = here.render_to_string(Format::Prometheus).unwrap();
    assert!(!text.contains("elsewhere_total{"), "{text}");
    drop((fam_here, fam_there, here, there));
    let _ = std::fs::remove_dir_all(&dir);
}
