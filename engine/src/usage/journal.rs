//! The usage journal: an append-only log of usage records on disk, split into segments, that
//! every sink reads from its own saved cursor.
//!
//! Durability. Records are written (one `write` per drain, every few ms) before any sink sees
//! them, and the file is `fdatasync`ed every `fsync_every` (default 1 s; 0 syncs every write).
//! A crash of the process (kill -9, OOM) loses nothing that was written: the page cache
//! survives it. A crash of the machine loses at most the last `fsync_every` of records. What a
//! crash can lose besides is what the reactors' rings and the side thread held but had not
//! written yet: a few ms of records.
//!
//! Cursors. A sink's cursor moves only after the sink accepted the records before it, and is
//! saved (write to a temporary file, rename) at most every 100 ms. After a restart a sink
//! resumes from its saved cursor, so it may be given up to 100 ms of records again: the record
//! id makes those inserts no-ops. A segment is deleted once every configured sink is past it.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::record::{FRAME_HEADER, MAX_PAYLOAD, UsageRecord};

/// Where a record starts: segment number and byte offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// How long a saved cursor may lag the cursor in memory.
const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(100);
/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 64 * 1024;

pub struct Journal {
    dir: PathBuf,
    file: File,
    end: Position,
    segment_limit: u64,
    fsync_every: Duration,
    dirty: bool,
    last_sync: Instant,
    /// Bytes in every segment on disk.
    disk_bytes: u64,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("usage-{segment:010}.journal"))
}

/// Segment numbers on disk, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
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
    pub fn open(dir: &Path, segment_limit: u64, fsync_every: Duration) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let existing = segments(dir)?;
        let segment = existing.last().copied().unwrap_or(1);
        let path = segment_path(dir, segment);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let valid = valid_length(&file)?;
        if valid < file.metadata()?.len() {
            tracing::warn!(segment, valid, "usage journal: cutting off a torn record");
            file.set_len(valid)?;
            file.sync_data()?;
        }
        let mut disk_bytes = 0;
        for s in &existing {
            disk_bytes += std::fs::metadata(segment_path(dir, *s)).map_or(0, |m| m.len());
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            file,
            end: Position {
                segment,
                offset: valid,
            },
            segment_limit: segment_limit.max(1 << 16),
            fsync_every,
            dirty: false,
            last_sync: Instant::now(),
            disk_bytes: disk_bytes.max(valid),
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
            .unwrap_or(self.end.segment);
        Position { segment, offset: 0 }
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// Appends whole frames (see [`UsageRecord::encode`]).
    pub fn append(&mut self, frames: &[u8]) -> std::io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        if self.end.offset > 0 && self.end.offset + frames.len() as u64 > self.segment_limit {
            self.rotate()?;
        }
        if let Err(e) = self.file.write_all(frames) {
            // Cut off whatever part did get written, so the retry starts on a frame boundary.
            let _ = self.file.set_len(self.end.offset);
            return Err(e);
        }
        self.end.offset += frames.len() as u64;
        self.disk_bytes += frames.len() as u64;
        self.dirty = true;
        // The frames are written: a failed sync must not make the caller write them again.
        if self.fsync_every.is_zero()
            && let Err(e) = self.sync()
        {
            tracing::error!(error = %e, "usage journal: fsync failed");
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.sync()?;
        let segment = self.end.segment + 1;
        self.file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(segment_path(&self.dir, segment))?;
        self.end = Position { segment, offset: 0 };
        Ok(())
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Syncs if the policy says it is time.
    pub fn sync_if_due(&mut self) -> std::io::Result<()> {
        if self.dirty && self.last_sync.elapsed() >= self.fsync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// Deletes the segments every sink has passed (`oldest`: the slowest cursor).
    pub fn collect(&mut self, oldest: Position) {
        let Ok(existing) = segments(&self.dir) else {
            return;
        };
        for segment in existing {
            if segment >= oldest.segment || segment >= self.end.segment {
                break;
            }
            let path = segment_path(&self.dir, segment);
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            if std::fs::remove_file(&path).is_ok() {
                self.disk_bytes = self.disk_bytes.saturating_sub(size);
            }
        }
    }

    /// Reads up to `max` records from `from`, and the position after them.
    pub fn read(
        &self,
        from: Position,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<(Vec<UsageRecord>, Position)> {
        self.read_until(from, self.end, max, buf)
    }

    /// As [`Journal::read`], stopping at `until` (a position the journal has reached).
    pub fn read_until(
        &self,
        mut from: Position,
        until: Position,
        max: usize,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<(Vec<UsageRecord>, Position)> {
        let until = until.min(self.end);
        let mut records = Vec::new();
        while records.len() < max && from < until {
            let limit = if from.segment == until.segment {
                until.offset
            } else {
                match File::open(segment_path(&self.dir, from.segment)) {
                    Ok(f) => f.metadata()?.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(e),
                }
            };
            if from.offset >= limit {
                if from.segment >= until.segment {
                    break;
                }
                from = Position {
                    segment: from.segment + 1,
                    offset: 0,
                };
                continue;
            }
            let want = usize::try_from(limit - from.offset)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            buf.clear();
            buf.resize(want, 0);
            let file = File::open(segment_path(&self.dir, from.segment))?;
            let n = file.read_at(buf, from.offset)?;
            let mut used = 0;
            while records.len() < max {
                match buf.get(used..n).and_then(UsageRecord::decode) {
                    Some((record, len)) => {
                        records.push(record);
                        used += len;
                    }
                    None => break,
                }
            }
            if used == 0 {
                // Not even one frame decodes where a whole one must be: a damaged segment.
                // Skip the rest of it rather than stall every sink forever.
                tracing::error!(
                    segment = from.segment,
                    offset = from.offset,
                    "usage journal: unreadable record; skipping the rest of the segment"
                );
                from.offset = limit;
                continue;
            }
            from.offset += used as u64;
        }
        Ok((records, from))
    }
}

/// How much of a segment holds whole, intact frames.
fn valid_length(file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; READ_CHUNK + MAX_PAYLOAD + FRAME_HEADER];
    let mut at = 0u64;
    while at < len {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        let mut used = 0;
        while let Some((_, frame)) = buf.get(used..n).and_then(UsageRecord::decode) {
            used += frame;
        }
        if used == 0 {
            break;
        }
        at += used as u64;
    }
    Ok(at)
}

/// A sink's place in the journal, saved in `cursor-NAME`.
pub struct Cursor {
    path: PathBuf,
    pub pos: Position,
    saved: Position,
    last_save: Instant,
}

impl Cursor {
    /// Loads the saved cursor of sink `name`; a sink seen for the first time starts at the
    /// journal's end (it gets the records from when it was configured).
    pub fn load(journal: &Journal, name: &str) -> Cursor {
        let path = journal.dir().join(format!("cursor-{name}"));
        let saved = std::fs::read_to_string(&path).ok().and_then(|text| {
            let (segment, offset) = text.trim().split_once(' ')?;
            Some(Position {
                segment: segment.parse().ok()?,
                offset: offset.parse().ok()?,
            })
        });
        let pos = match saved {
            Some(pos) => pos.max(journal.start()).min(journal.end()),
            None => journal.end(),
        };
        let mut cursor = Cursor {
            path,
            pos,
            saved: Position::default(),
            last_save: Instant::now(),
        };
        if let Err(e) = cursor.save() {
            tracing::error!(error = %e, sink = name, "cannot save a usage cursor");
        }
        cursor
    }

    /// Moves on after the sink accepted the records up to `pos`; saves when due.
    pub fn advance(&mut self, pos: Position) -> std::io::Result<()> {
        self.pos = pos;
        if self.last_save.elapsed() >= CURSOR_SAVE_EVERY {
            self.save()?;
        }
        Ok(())
    }

    pub fn save(&mut self) -> std::io::Result<()> {
        if self.saved == self.pos && self.path.exists() {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.pos.segment, self.pos.offset))?;
        std::fs::rename(&tmp, &self.path)?;
        self.saved = self.pos;
        self.last_save = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Protocol;

    fn record(seq: u64) -> UsageRecord {
        UsageRecord {
            boot: 1,
            seq,
            key_id: 0,
            ts_ms: 5,
            protocol: Protocol::Http,
            latency: 0,
            node: "n".into(),
            assets: "BTC".into(),
        }
    }

    fn frames(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            record(seq).encode(&mut out);
        }
        out
    }

    #[test]
    fn reads_across_segments_and_collects_passed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 16, Duration::ZERO).unwrap();
        let mut cursor = Cursor::load(&journal, "a");
        for chunk in 0..40 {
            journal
                .append(&frames(chunk * 100..chunk * 100 + 100))
                .unwrap();
        }
        assert!(journal.end().segment > 3, "{:?}", journal.end());
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            let (records, next) = journal.read(cursor.pos, 300, &mut buf).unwrap();
            if records.is_empty() {
                break;
            }
            assert!(records.len() <= 300);
            seen.extend(records.iter().map(|r| r.seq));
            cursor.advance(next).unwrap();
        }
        assert_eq!(seen, (0..4000).collect::<Vec<_>>());
        let before = journal.disk_bytes();
        journal.collect(cursor.pos);
        assert!(journal.disk_bytes() < before);
        assert_eq!(journal.start().segment, journal.end().segment);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_cursors_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap();
        let mut cursor = Cursor::load(&journal, "pg");
        journal.append(&frames(0..10)).unwrap();
        let (first, next) = journal.read(cursor.pos, 4, &mut Vec::new()).unwrap();
        assert_eq!(first.len(), 4);
        cursor.advance(next).unwrap();
        cursor.save().unwrap();
        let torn = frames(10..11);
        journal.append(&torn[..torn.len() - 3]).unwrap();
        drop(journal);

        let journal = Journal::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap();
        let cursor = Cursor::load(&journal, "pg");
        let (rest, _) = journal.read(cursor.pos, 100, &mut Vec::new()).unwrap();
        assert_eq!(
            rest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        let fresh = Cursor::load(&journal, "sqs");
        assert_eq!(fresh.pos, journal.end(), "a new sink starts at the end");
    }
}
