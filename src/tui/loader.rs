//! Frame loader: a thread that decodes the frame the cursor is on (latest request wins, no
//! backlog), then prefetches the neighbours while idle, into a byte-bounded LRU of decoded
//! frames. The UI never waits on it: it shows the cached frame at once or the previous one until
//! the new one arrives.

use crate::dataset::{Dataset, FrameBuf, ReadScratch};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub type Frame = Arc<Vec<f32>>;

struct Shared {
    req: Mutex<Option<usize>>,
    cv: Condvar,
    cache: Mutex<LruCache<usize, Frame>>,
    stop: AtomicBool,
}

pub struct Loader {
    ds: Arc<dyn Dataset>,
    shared: Arc<Shared>,
    /// Synchronous mode (tests, benchmarks): requests are served on the caller's thread.
    sync: bool,
}

fn read(ds: &dyn Dataset, pos: usize, buf: &mut FrameBuf, scratch: &mut ReadScratch) -> Option<Frame> {
    match ds.read_positions(pos, 1, buf, scratch) {
        Ok(()) => Some(Arc::new(crate::with_frames!(&*buf, v => v.iter().map(|&x| x as f32).collect()))),
        Err(e) => {
            log::warn!("frame {pos}: {e}");
            None
        }
    }
}

impl Loader {
    /// `notify(pos)` is called on the loader thread when a requested frame is ready.
    pub fn new(
        ds: Arc<dyn Dataset>,
        cache_bytes: usize,
        sync: bool,
        notify: impl Fn(usize) + Send + 'static,
    ) -> Loader {
        let frame_bytes = ds.frame_pixels().max(1) * 4;
        let cap = NonZeroUsize::new((cache_bytes / frame_bytes).clamp(8, 4096)).unwrap();
        let shared = Arc::new(Shared {
            req: Mutex::new(None),
            cv: Condvar::new(),
            cache: Mutex::new(LruCache::new(cap)),
            stop: AtomicBool::new(false),
        });
        if !sync {
            let (sh, ds) = (shared.clone(), ds.clone());
            std::thread::Builder::new()
                .name("frame-loader".into())
                .spawn(move || {
                    let mut buf = FrameBuf::new(ds.info().pixel_type);
                    let mut scratch = ReadScratch::default();
                    let n = ds.scan().positions();
                    let cols = ds.scan().cols.max(1);
                    loop {
                        let pos = {
                            let mut r = sh.req.lock().unwrap();
                            while r.is_none() && !sh.stop.load(Ordering::Relaxed) {
                                r = sh.cv.wait(r).unwrap();
                            }
                            if sh.stop.load(Ordering::Relaxed) {
                                return;
                            }
                            r.take().unwrap()
                        };
                        let have = sh.cache.lock().unwrap().contains(&pos);
                        if !have && let Some(f) = read(ds.as_ref(), pos, &mut buf, &mut scratch) {
                            sh.cache.lock().unwrap().put(pos, f);
                        }
                        notify(pos);
                        // prefetch neighbours while no new request is pending
                        let cand = [pos + 1, pos.wrapping_sub(1), pos + cols, pos.wrapping_sub(cols)];
                        for p in cand {
                            if p >= n || sh.req.lock().unwrap().is_some() {
                                continue;
                            }
                            if sh.cache.lock().unwrap().contains(&p) {
                                continue;
                            }
                            if let Some(f) = read(ds.as_ref(), p, &mut buf, &mut scratch) {
                                sh.cache.lock().unwrap().put(p, f);
                            }
                        }
                    }
                })
                .expect("spawn frame loader");
        }
        Loader { ds, shared, sync }
    }

    /// The frame if decoded already.
    pub fn get(&self, pos: usize) -> Option<Frame> {
        self.shared.cache.lock().unwrap().get(&pos).cloned()
    }

    /// Ask for a frame (replaces any pending request). In sync mode it is decoded now.
    pub fn request(&self, pos: usize) {
        if self.sync {
            if self.get(pos).is_none() {
                let mut buf = FrameBuf::new(self.ds.info().pixel_type);
                if let Some(f) = read(self.ds.as_ref(), pos, &mut buf, &mut ReadScratch::default()) {
                    self.shared.cache.lock().unwrap().put(pos, f);
                }
            }
            return;
        }
        *self.shared.req.lock().unwrap() = Some(pos);
        self.shared.cv.notify_one();
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.cv.notify_all();
    }
}
