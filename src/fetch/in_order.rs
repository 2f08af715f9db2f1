//! Work done in parallel, consumed in order: the consumer takes each
//! result as soon as it and every one before it are finished, so it can
//! start on the first while the rest are still under way.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Runs `work` on every item, on up to `workers` threads, starting them in
/// order, and gives `consume` the results in the items' order. An error
/// ends the sequence `consume` sees, and once it is known no further item
/// is started (items other workers took before that still run). When
/// `consume` returns, items not yet started are skipped and those under way
/// are finished before this returns. A panic in `work` is raised again in
/// `consume` when it reaches that item.
pub fn in_order<I, R, E, T>(
    items: &[I],
    workers: usize,
    work: impl Fn(&I) -> Result<R, E> + Sync,
    consume: impl FnOnce(&mut dyn Iterator<Item = Result<R, E>>) -> T,
) -> T
where
    I: Sync,
    R: Send,
    E: Send,
{
    let done = Done {
        slots: Mutex::new((0..items.len()).map(|_| None).collect()),
        changed: Condvar::new(),
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else {
                        return;
                    };
                    let result = panic::catch_unwind(AssertUnwindSafe(|| work(item)));
                    if !matches!(result, Ok(Ok(_))) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    done.put(i, result);
                }
            });
        }
        let mut results = InOrder {
            done: &done,
            at: 0,
            stop: &stop,
            ended: false,
        };
        consume(&mut results)
    })
}

type Slot<R, E> = Option<std::thread::Result<Result<R, E>>>;

/// Finished results by item index, until the consumer takes them.
struct Done<R, E> {
    slots: Mutex<Vec<Slot<R, E>>>,
    changed: Condvar,
}

impl<R, E> Done<R, E> {
    fn put(&self, i: usize, result: std::thread::Result<Result<R, E>>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots[i] = Some(result);
        self.changed.notify_all();
    }

    /// Waits for item `i`'s result; None past the end.
    fn take(&self, i: usize) -> Slot<R, E> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if i >= slots.len() {
            return None;
        }
        loop {
            if let Some(result) = slots[i].take() {
                return Some(result);
            }
            slots = self.changed.wait(slots).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The consumer's side: results in order, waiting for each.
struct InOrder<'a, R, E> {
    done: &'a Done<R, E>,
    at: usize,
    stop: &'a AtomicBool,
    /// An error was handed on: the items after it may never start.
    ended: bool,
}

impl<R, E> Iterator for InOrder<'_, R, E> {
    type Item = Result<R, E>;

    fn next(&mut self) -> Option<Result<R, E>> {
        if self.ended {
            return None;
        }
        let result = self.done.take(self.at)?;
        self.at += 1;
        match result {
            Ok(result) => {
                self.ended = result.is_err();
                Some(result)
            }
            Err(panicked) => {
                self.ended = true;
                panic::resume_unwind(panicked)
            }
        }
    }
}

impl<R, E> Drop for InOrder<'_, R, E> {
    /// However the consumer ends (done, failed or panicking), the workers
    /// start nothing more, so the scope's join is quick.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Later items finish first (each sleeps less than the one before), yet
    /// the consumer sees them in order.
    #[test]
    fn results_come_in_item_order() {
        let items: Vec<u64> = (0..12).collect();
        let got: Vec<u64> = in_order(
            &items,
            4,
            |&i| {
                std::thread::sleep(Duration::from_millis(24 - 2 * i));
                Ok::<_, ()>(i * 10)
            },
            |results| results.map(Result::unwrap).collect(),
        );
        assert_eq!(got, (0..12).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn the_consumer_starts_before_the_last_item_is_done() {
        let items = [0u64, 1];
        in_order(
            &items,
            2,
            |&i| {
                std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 300 }));
                Ok::<_, ()>(std::time::Instant::now())
            },
            |results| {
                results.next().unwrap().unwrap();
                let seen = std::time::Instant::now();
                let last_done = results.next().unwrap().unwrap();
                assert!(seen < last_done, "the first result waited for the last");
            },
        );
    }

    /// Items after the failing one take long enough that the failure is
    /// known before the worker beside it is done with its item: that worker
    /// then starts nothing more. (With instant items it could take every
    /// remaining item before the failure is recorded; the rule is "nothing
    /// new once a failure is known", not "nothing after the failed index".)
    #[test]
    fn an_error_ends_the_sequence_and_later_items_do_not_start() {
        let items: Vec<usize> = (0..50).collect();
        let started = AtomicUsize::new(0);
        let seen: Vec<Result<usize, String>> = in_order(
            &items,
            2,
            |&i| {
                started.fetch_add(1, Ordering::SeqCst);
                match i {
                    3 => Err(format!("item {i} failed")),
                    0..=2 => Ok(i),
                    _ => {
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(i)
                    }
                }
            },
            |results| results.collect(),
        );
        assert_eq!(seen, vec![Ok(0), Ok(1), Ok(2), Err("item 3 failed".into())]);
        // Items 0-3, and the one the other worker took beside item 3.
        assert!(started.load(Ordering::SeqCst) <= 5, "{started:?}");
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_work() {
        let items: Vec<usize> = (0..1000).collect();
        let started = AtomicUsize::new(0);
        let first = in_order(
            &items,
            2,
            |&i| {
                started.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                Ok::<_, ()>(i)
            },
            |results| results.next(),
        );
        assert_eq!(first, Some(Ok(0)));
        assert!(started.load(Ordering::SeqCst) < 100, "{started:?}");
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_consumer() {
        let items = [0, 1, 2];
        let caught = panic::catch_unwind(|| {
            in_order(
                &items,
                2,
                |&i| {
                    if i == 1 {
                        panic!("work panicked on item 1");
                    }
                    Ok::<_, ()>(i)
                },
                |results| results.count(),
            )
        });
        let payload = caught.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"work panicked on item 1")
        );
    }

    #[test]
    fn no_items() {
        let items: [u8; 0] = [];
        let n = in_order(&items, 4, |_| Ok::<_, ()>(()), |results| results.count());
        assert_eq!(n, 0);
    }
}
