//! The usage journal: an append-only log of usage batches on disk, split into segments, that
//! every sink reads from its own saved cursor.
//!
//! Durability. Batches are written (one `write` per drain, every 5 ms) before any sink sees
//! them; the side thread has the file `fdatasync`ed every `BEAST_JOURNAL_FSYNC_MS`, on the
//! blocking pool (a slow disk never holds up the drain). A crash of the process (kill -9, OOM)
//! loses nothing that was written: the page cache survives it. A crash of the machine loses at
//! most the last fsync interval.
//!
//! Cursors. A sink's cursor moves only past batches the sink has made durable, and is saved
//! durably (written, fsynced, renamed, directory fsynced) before the segments it has passed are
//! deleted. A cursor that is missing, empty, unreadable or not on a frame boundary is rebuilt
//! from the oldest segment on disk: the sink is given batches again rather than skip any, and
//! the stores' per-boot progress makes the repeats no-ops.
//!
//! Damage. A frame torn by a crash at the end of the last segment is cut off at start. Damaged
//! bytes anywhere else are skipped up to the next intact frame (frames start with a magic word
//! and carry a checksum), counted and logged.
//!
//! Size. Past `max_bytes` on disk the oldest segment is given up (see the side thread's usage
//! module): serving never stops for a full journal, and what is given up is counted.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::batch::{Batch, Decoded, FRAME_HEADER, MAGIC, MAX_PAYLOAD, Scanned, scan};

/// Where a frame starts: segment number and byte offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 256 * 1024;
/// The smallest segment: a cap must hold a few of them.
pub(crate) const MIN_SEGMENT: u64 = 64 * 1024;

pub(crate) struct Journal {
    dir: PathBuf,
    file: File,
    end: Position,
    segment_limit: u64,
    /// Written since the last [`Journal::take_unsynced`].
    dirty: bool,
    /// Segments closed by a rotation and not yet synced.
    closed: Vec<File>,
    /// Bytes in every segment on disk.
    disk_bytes: u64,
}

fn open_segment(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

pub(crate) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("usage-{segment:010}.journal"))
}

/// Segment numbers on disk, oldest first.
pub fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let name = name.to_str()?;
            name.strip_prefix("usage-")?
                .strip_suffix(".journal")?
                .parse()
                .ok()
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

impl Journal {
    /// Opens the journal in `dir` (created if needed), cutting off a frame torn by a crash.
    pub fn open(dir: &Path, segment_limit: u64) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        // A segment being given up when the process stopped: its loss was logged then.
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "discarding") {
                tracing::warn!(path = %entry.path().display(), "usage journal: deleting a segment given up before the restart");
                std::fs::remove_file(entry.path())?;
            }
        }
        let existing = segments(dir)?;
        let segment = existing.last().copied().unwrap_or(1);
        let path = segment_path(dir, segment);
        let file = open_segment(&path)?;
        let len = file.metadata()?.len();
        let valid = valid_length(&file, len)?;
        if valid < len {
            tracing::warn!(
                segment,
                valid,
                cut = len - valid,
                "usage journal: cutting off a record torn by a crash"
            );
            file.set_len(valid)?;
            file.sync_data()?;
        }
        let mut disk_bytes = valid;
        for s in existing.iter().filter(|s| **s != segment) {
            disk_bytes += std::fs::metadata(segment_path(dir, *s)).map_or(0, |m| m.len());
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            file,
            end: Position {
                segment,
                offset: valid,
            },
            segment_limit: segment_limit.max(MIN_SEGMENT),
            dirty: false,
            closed: Vec::new(),
            disk_bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn end(&self) -> Position {
        self.end
    }

    /// The oldest position still on disk.
    pub fn start(&self) -> Position {
        let segment = segments(&self.dir)
            .ok()
            .and_then(|s| s.first().copied())
            .unwrap_or(self.end.segment)
            .min(self.end.segment);
        Position { segment, offset: 0 }
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Appends whole frames (see [`Batch::encode`]).
    pub fn append(&mut self, frames: &[u8]) -> std::io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        if self.end.offset > 0 && self.end.offset + frames.len() as u64 > self.segment_limit {
            self.rotate()?;
        }
        // Positioned writes: a write that failed part-way leaves bytes past `end`, which the
        // retry overwrites (and a restart cuts off as a torn tail).
        if let Err(e) = self.file.write_all_at(frames, self.end.offset) {
            let _ = self.file.set_len(self.end.offset);
            return Err(e);
        }
        self.end.offset += frames.len() as u64;
        self.disk_bytes += frames.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let segment = self.end.segment + 1;
        let next = open_segment(&segment_path(&self.dir, segment))?;
        let old = std::mem::replace(&mut self.file, next);
        if self.dirty {
            self.closed.push(old);
        }
        self.dirty = false;
        self.end = Position { segment, offset: 0 };
        Ok(())
    }

    /// The files written since the last call, to be synced off the drain's thread: a sync of
    /// a handle covers every byte written through any handle of the file before it.
    pub(crate) fn take_unsynced(&mut self) -> std::io::Result<Vec<File>> {
        let mut files = std::mem::take(&mut self.closed);
        if self.dirty {
            files.push(self.file.try_clone()?);
            self.dirty = false;
        }
        Ok(files)
    }

    /// Deletes the segments every sink has passed (`oldest`: the slowest durably saved
    /// cursor); never the segment being written.
    pub fn collect(&mut self, oldest: Position) {
        let Ok(existing) = segments(&self.dir) else {
            return;
        };
        for segment in existing {
            if segment >= oldest.segment || segment >= self.end.segment {
                break;
            }
            self.remove(segment);
        }
    }

    /// The oldest segment, when the journal is past `max_bytes` and it is not the one being
    /// written.
    pub(crate) fn over_cap(&self, max_bytes: u64) -> Option<u64> {
        if self.disk_bytes <= max_bytes {
            return None;
        }
        let oldest = self.start().segment;
        (oldest < self.end.segment).then_some(oldest)
    }

    /// Takes a segment renamed away (given up at the cap) out of the size; its size.
    pub(crate) fn forget(&mut self, segment: u64) -> u64 {
        let path = segment_path(&self.dir, segment).with_extension("discarding");
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        self.disk_bytes = self.disk_bytes.saturating_sub(size);
        size
    }

    /// Bytes of frames from `pos` to the journal's end.
    pub(crate) fn bytes_from(&self, pos: Position) -> u64 {
        self.bytes_between(pos, self.end)
    }

    /// Bytes of frames from `from` to `to` (segments missing count nothing).
    pub(crate) fn bytes_between(&self, from: Position, to: Position) -> u64 {
        if to <= from {
            return 0;
        }
        if from.segment == to.segment {
            return to.offset - from.offset;
        }
        let size = |segment: u64| {
            if segment == self.end.segment {
                return self.end.offset;
            }
            std::fs::metadata(segment_path(&self.dir, segment)).map_or(0, |m| m.len())
        };
        let mut bytes = size(from.segment).saturating_sub(from.offset);
        for segment in from.segment + 1..to.segment {
            bytes += size(segment);
        }
        bytes + to.offset
    }

    /// Deletes one segment; its size.
    pub fn remove(&mut self, segment: u64) -> u64 {
        let path = segment_path(&self.dir, segment);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.disk_bytes = self.disk_bytes.saturating_sub(size);
                size
            }
            Err(_) => 0,
        }
    }

    /// Reads batches from `from`, up to `max` of them or about `max_bytes` of frames, stopping at
    /// the journal's end: the batches, the position after them, and how many damaged bytes were
    /// skipped on the way.
    #[cfg(test)]
    pub fn read(&self, from: Position, max: usize, max_bytes: usize) -> std::io::Result<Read> {
        read_until(&self.dir, from, self.end, max, max_bytes)
    }

    /// Whether a frame (or the end of its segment) starts at `pos`.
    pub(crate) fn is_boundary(&self, pos: Position) -> bool {
        if pos > self.end {
            return false;
        }
        let Ok(file) = File::open(segment_path(&self.dir, pos.segment)) else {
            return pos.offset == 0;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if pos.offset >= len {
            return pos.offset == len;
        }
        let mut head = vec![0u8; READ_CHUNK];
        let Ok(n) = file.read_at(&mut head, pos.offset) else {
            return false;
        };
        match scan(head.get(..n).unwrap_or_default()) {
            Scanned::Frame { .. } => true,
            Scanned::Short(need) => {
                let mut whole = vec![0u8; need];
                file.read_exact_at(&mut whole, pos.offset).is_ok()
                    && matches!(scan(&whole), Scanned::Frame { .. })
            }
            Scanned::Bad => false,
        }
    }
}

/// What a read returned.
#[derive(Debug, Default)]
pub struct Read {
    pub batches: Vec<Batch>,
    pub next: Position,
    /// Damaged bytes skipped.
    pub skipped: u64,
}

/// Reads batches of the journal in `dir` from `from` up to `until` (see [`Journal::read`]); a
/// free function so it can run on the blocking pool.
pub fn read_until(
    dir: &Path,
    mut from: Position,
    until: Position,
    max: usize,
    max_bytes: usize,
) -> std::io::Result<Read> {
    let mut read = Read::default();
    let mut bytes = 0;
    while read.batches.len() < max && bytes < max_bytes && from < until {
        let file = match File::open(segment_path(dir, from.segment)) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let len = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        let limit = if from.segment == until.segment {
            until.offset.min(len)
        } else {
            len
        };
        let Some(file) = file.filter(|_| from.offset < limit) else {
            if from.segment >= until.segment {
                break;
            }
            from = Position {
                segment: from.segment + 1,
                offset: 0,
            };
            continue;
        };
        let used = read_segment(&file, from, limit, max, max_bytes - bytes, &mut read)?;
        bytes += used;
        from.offset += used as u64;
    }
    read.next = from;
    Ok(read)
}

/// Reads frames of one segment file from `at` (not past `limit`) into `read`, up to `max`
/// batches in all or about `max_bytes`; the bytes it went past.
fn read_segment(
    file: &File,
    at: Position,
    limit: u64,
    max: usize,
    max_bytes: usize,
    read: &mut Read,
) -> std::io::Result<usize> {
    let span = usize::try_from(limit.saturating_sub(at.offset)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; span.min(READ_CHUNK)];
    let n = file.read_at(&mut buf, at.offset)?;
    let mut used = 0;
    while read.batches.len() < max && used < max_bytes {
        match Batch::peek(buf.get(used..n).unwrap_or_default()) {
            Decoded::Frame(batch, len) => {
                read.batches.push(batch);
                used += len;
                continue;
            }
            // The rest of this frame is in the next chunk.
            Decoded::Short(_) if used > 0 => {}
            Decoded::Short(need) if need <= span => {
                // One frame larger than a chunk: read it whole.
                buf.resize(need, 0);
                file.read_exact_at(&mut buf, at.offset)?;
                used = match Batch::peek(&buf) {
                    Decoded::Frame(batch, len) => {
                        read.batches.push(batch);
                        len
                    }
                    _ => skip_damage(file, at, limit, read)?,
                };
            }
            // Damaged bytes, or a frame claiming more than its segment holds. Frames before
            // them are taken first; the next read starts on the damage.
            Decoded::Short(_) | Decoded::Bad => {
                if used == 0 {
                    used = skip_damage(file, at, limit, read)?;
                }
            }
        }
        break;
    }
    Ok(used)
}

/// Records in the frames of the segment file `path` from `offset` on (damaged bytes skipped).
pub(crate) fn count_records(path: &Path, offset: u64) -> std::io::Result<u64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut records = 0;
    walk(&file, offset, len, |frame| records += frame)?;
    Ok(records)
}

/// Walks the intact frames of `file` from `from` to `len`, calling `each` with each one's
/// record count and skipping damage; where it stopped (`len`, or the start of a tail that
/// holds no intact frame: bytes torn by a crash).
fn walk(file: &File, mut at: u64, len: u64, mut each: impl FnMut(u64)) -> std::io::Result<u64> {
    let mut buf = vec![0u8; READ_CHUNK];
    while at < len {
        let want = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK);
        buf.resize(want, 0);
        let n = file.read_at(&mut buf, at)?;
        let mut used = 0;
        let mut damaged = false;
        loop {
            match scan(buf.get(used..n).unwrap_or_default()) {
                Scanned::Frame {
                    len: frame,
                    records,
                    ..
                } => {
                    each(records);
                    used += frame;
                }
                Scanned::Short(_) if used > 0 => break,
                Scanned::Short(need) if at + need as u64 <= len => {
                    let mut whole = vec![0u8; need];
                    file.read_exact_at(&mut whole, at)?;
                    match scan(&whole) {
                        Scanned::Frame {
                            len: frame,
                            records,
                            ..
                        } => {
                            each(records);
                            used = frame;
                        }
                        _ => damaged = true,
                    }
                    break;
                }
                Scanned::Short(_) | Scanned::Bad => {
                    damaged = true;
                    break;
                }
            }
        }
        at += used as u64;
        if damaged {
            let resume = next_frame(file, at + 1, len)?;
            if resume >= len {
                return Ok(at);
            }
            at = resume;
        }
    }
    Ok(at)
}

/// Skips damaged bytes at `at` up to the next intact frame (or `limit`); how many.
fn skip_damage(file: &File, at: Position, limit: u64, read: &mut Read) -> std::io::Result<usize> {
    let resume = next_frame(file, at.offset + 1, limit)?;
    let skipped = resume - at.offset;
    tracing::error!(
        segment = at.segment,
        offset = at.offset,
        skipped,
        "usage journal: damaged bytes skipped"
    );
    read.skipped += skipped;
    Ok(usize::try_from(skipped).unwrap_or(usize::MAX))
}

/// The offset of the first intact frame with the magic word in `[from, limit)`, or `limit`.
fn next_frame(file: &File, mut from: u64, limit: u64) -> std::io::Result<u64> {
    let magic = MAGIC.to_le_bytes();
    let mut buf = vec![0u8; READ_CHUNK];
    while from < limit {
        let want = usize::try_from(limit - from)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK);
        let n = file.read_at(buf.get_mut(..want).unwrap_or_default(), from)?;
        if n == 0 {
            break;
        }
        let window = buf.get(..n).unwrap_or_default();
        let mut at = 0;
        while let Some(hit) = memchr::memmem::find(window.get(at..).unwrap_or_default(), &magic) {
            let offset = from + (at + hit) as u64;
            at += hit + 1;
            let mut head = [0u8; FRAME_HEADER];
            if offset + FRAME_HEADER as u64 > limit {
                continue;
            }
            file.read_exact_at(&mut head, offset)?;
            let len = head
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map_or(u64::MAX, |b| u64::from(u32::from_le_bytes(b)));
            if len <= MAX_PAYLOAD as u64 && offset + FRAME_HEADER as u64 + len <= limit {
                let mut whole = vec![0u8; FRAME_HEADER + usize::try_from(len).unwrap_or(0)];
                if file.read_exact_at(&mut whole, offset).is_ok()
                    && matches!(scan(&whole), Scanned::Frame { .. })
                {
                    return Ok(offset);
                }
            }
        }
        // Keep the last few bytes: a magic word may straddle two windows.
        from += n.saturating_sub(3).max(1) as u64;
    }
    Ok(limit)
}

/// How much of a segment to keep: everything up to its last intact frame (damage before that
/// is left for readers to skip); a torn tail is cut.
fn valid_length(file: &File, len: u64) -> std::io::Result<u64> {
    walk(file, 0, len, |_| {})
}

/// Why a sink's cursor was rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CursorSource {
    /// Read from its file.
    Saved,
    /// No file: a sink seen for the first time, or a file lost.
    Missing,
    /// The file is empty or not a position.
    Unreadable,
    /// The position is not on a frame boundary.
    Invalid,
    /// The position is past the journal's end: the journal lost its tail (a machine crash
    /// after the cursor's fsync and before the journal's). Nothing past the end exists, so
    /// the cursor starts at the end.
    PastEnd,
}

/// A sink's place in the journal, saved in `cursor-NAME`.
pub(crate) struct Cursor {
    path: PathBuf,
    pub pos: Position,
    /// What is durably saved.
    pub saved: Position,
}

impl Cursor {
    /// Loads the saved cursor of sink `name`. Anything but a valid saved position starts at the
    /// journal's oldest segment (the stores' progress absorbs the repeats), and says why.
    pub fn load(journal: &Journal, name: &str) -> (Cursor, CursorSource) {
        let path = journal.dir().join(format!("cursor-{name}"));
        let (saved, source) = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, CursorSource::Missing),
            Err(_) => (None, CursorSource::Unreadable),
            Ok(text) => match parse_position(&text) {
                None => (None, CursorSource::Unreadable),
                Some(pos) if pos > journal.end() => (Some(journal.end()), CursorSource::PastEnd),
                Some(pos) if !journal.is_boundary(pos.max(journal.start())) => {
                    (None, CursorSource::Invalid)
                }
                Some(pos) => (Some(pos), CursorSource::Saved),
            },
        };
        // A saved position in a segment given up (or collected) moves to the oldest one left.
        let pos = saved.map_or_else(|| journal.start(), |p| p.max(journal.start()));
        (
            Cursor {
                path,
                pos,
                saved: if matches!(source, CursorSource::Saved | CursorSource::PastEnd) {
                    pos
                } else {
                    Position::default()
                },
            },
            source,
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_position(text: &str) -> Option<Position> {
    let (segment, offset) = text.trim().split_once(' ')?;
    Some(Position {
        segment: segment.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// Saves a cursor durably: written to a temporary file, fsynced, renamed over the old one, and
/// the directory fsynced, so a crash leaves the old position or the new one, never neither.
pub(crate) fn save_cursor(path: &Path, pos: Position) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{} {}\n", pos.segment, pos.offset).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::batch::tests::sample;

    fn frames(batches: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for n in batches {
            sample(n * 10, 10).encode(&mut out);
        }
        out
    }

    fn read_all(journal: &Journal, mut from: Position) -> (Vec<u64>, Position, u64) {
        let mut seen = Vec::new();
        let mut skipped = 0;
        loop {
            let read = journal.read(from, 7, 1 << 20).unwrap();
            skipped += read.skipped;
            if read.batches.is_empty() && read.next == from {
                return (seen, from, skipped);
            }
            assert!(read.batches.len() <= 7);
            seen.extend(read.batches.iter().map(|b| b.first_seq));
            from = read.next;
        }
    }

    #[test]
    fn reads_across_segments_and_collects_passed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), MIN_SEGMENT).unwrap();
        for chunk in 0..200 {
            journal
                .append(&frames(chunk * 10..chunk * 10 + 10))
                .unwrap();
        }
        assert!(journal.end().segment > 3, "{:?}", journal.end());
        assert!(
            !journal.take_unsynced().unwrap().is_empty(),
            "closed segments to sync"
        );
        assert!(journal.take_unsynced().unwrap().is_empty());
        let (cursor, source) = Cursor::load(&journal, "a");
        assert_eq!(source, CursorSource::Missing);
        let (seen, end, skipped) = read_all(&journal, cursor.pos);
        assert_eq!(seen, (0..2000).map(|n| n * 10).collect::<Vec<_>>());
        assert_eq!((end, skipped), (journal.end(), 0));
        let before = journal.disk_bytes();
        journal.collect(end);
        assert!(journal.disk_bytes() < before);
        assert_eq!(journal.start().segment, journal.end().segment);
        assert_eq!(journal.over_cap(0), None, "the current segment stays");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_cursors_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        journal.append(&frames(0..10)).unwrap();
        let (cursor, _) = Cursor::load(&journal, "pg");
        let read = journal.read(cursor.pos, 4, 1 << 20).unwrap();
        assert_eq!(read.batches.len(), 4);
        save_cursor(cursor.path(), read.next).unwrap();
        let torn = frames(10..11);
        journal.append(&torn[..torn.len() - 3]).unwrap();
        drop(journal);

        let journal = Journal::open(dir.path(), 1 << 20).unwrap();
        let (cursor, source) = Cursor::load(&journal, "pg");
        assert_eq!((source, cursor.saved), (CursorSource::Saved, read.next));
        let (rest, _, _) = read_all(&journal, cursor.pos);
        assert_eq!(rest, (4..10).map(|n| n * 10).collect::<Vec<_>>());
    }

    #[test]
    fn a_bad_cursor_starts_at_the_oldest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        journal.append(&frames(0..3)).unwrap();
        let path = dir.path().join("cursor-pg");
        for (text, source) in [
            ("", CursorSource::Unreadable),
            ("garbage", CursorSource::Unreadable),
            ("1 5\n", CursorSource::Invalid),
        ] {
            std::fs::write(&path, text).unwrap();
            let (cursor, found) = Cursor::load(&journal, "pg");
            assert_eq!((found, cursor.pos), (source, journal.start()), "{text:?}");
        }
        // Past the end (the journal lost its tail): nothing there to deliver.
        std::fs::write(&path, "9 0\n").unwrap();
        let (cursor, found) = Cursor::load(&journal, "pg");
        assert_eq!((found, cursor.pos), (CursorSource::PastEnd, journal.end()));
        save_cursor(&path, journal.end()).unwrap();
        assert_eq!(Cursor::load(&journal, "pg").1, CursorSource::Saved);
    }

    #[test]
    fn damaged_bytes_are_skipped_to_the_next_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        let mut bytes = frames(0..5);
        let one = bytes.len() / 5;
        bytes[one + 20] ^= 0xff; // the second frame
        journal.append(&bytes).unwrap();
        drop(journal);
        // Damage before intact frames is not a torn tail: nothing is cut at start.
        let journal = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(journal.end().offset, bytes.len() as u64);
        let (seen, _, skipped) = read_all(
            &journal,
            Position {
                segment: 1,
                offset: 0,
            },
        );
        assert_eq!(seen, [0, 20, 30, 40]);
        assert_eq!(skipped, one as u64);
    }
}
