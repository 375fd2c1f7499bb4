//! Log lines leave the thread that wrote them through a bounded queue, and one thread of their
//! own writes them to stderr: a reactor that logs never waits on a slow consumer of the log (a
//! pipe, a container runtime's log driver). When the queue is full the line is dropped and
//! counted (`beast_log_lines_dropped_total`); nothing blocks.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Lines waiting for the writer thread at most.
const QUEUE_LINES: usize = 4096;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped because the writer fell behind.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// What a tracing subscriber writes through (`with_writer`).
#[derive(Clone)]
pub struct QueuedStderr {
    queue: SyncSender<Vec<u8>>,
}

/// Keeps the writer thread; dropping it writes what is queued and stops the thread.
pub struct Flush {
    thread: Option<JoinHandle<()>>,
}

/// The queue and its writer thread.
pub fn queued_stderr() -> std::io::Result<(QueuedStderr, Flush)> {
    let (queue, lines) = sync_channel(QUEUE_LINES);
    let thread = std::thread::Builder::new()
        .name("beast-log".into())
        .spawn(move || write_lines(&lines))?;
    Ok((
        QueuedStderr { queue },
        Flush {
            thread: Some(thread),
        },
    ))
}

fn write_lines(lines: &Receiver<Vec<u8>>) {
    let stderr = std::io::stderr();
    for line in lines {
        let mut out = stderr.lock();
        let _ = out.write_all(&line);
        let mut written = 1;
        // Whatever else is queued goes out under the same lock.
        while let Ok(line) = lines.try_recv() {
            let _ = out.write_all(&line);
            written += 1;
        }
        let _ = out.flush();
        QUEUED.fetch_sub(written, Ordering::Release);
    }
}

/// Lines handed to the queue and not yet written (the flush at exit waits for 0).
static QUEUED: AtomicU64 = AtomicU64::new(0);

impl Drop for Flush {
    fn drop(&mut self) {
        // The subscriber holds a sender for the life of the process, so the thread never ends:
        // wait (a second at most) until it has written what is queued.
        if self.thread.take().is_some() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while QUEUED.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
    }
}

/// One event's line, handed over whole when the formatter is done with it.
pub struct Line {
    bytes: Vec<u8>,
    queue: SyncSender<Vec<u8>>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        // Counted before it is sent, so the writer's count never goes below zero.
        QUEUED.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(std::mem::take(&mut self.bytes))
        {
            QUEUED.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            bytes: Vec::with_capacity(256),
            queue: self.queue.clone(),
        }
    }
}
