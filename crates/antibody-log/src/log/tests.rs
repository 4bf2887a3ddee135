use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::error::CorruptReason;
use crate::frame::HEADER_LEN;

type Entry = (u64, i64, Vec<u8>);

/// Payload of 20 bytes, so each record takes 36 bytes on disk.
fn fixed(i: u64) -> Vec<u8> {
    format!("payload-{i:012}").into_bytes()
}

fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        ..LogOptions::default()
    }
}

fn append_owned(log: &mut SegmentLog, ts: i64, payloads: &[Vec<u8>]) -> Range<u64> {
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    log.append(ts, &refs).unwrap()
}

fn read_all(log: &SegmentLog, from: u64) -> Vec<Entry> {
    log.read_from(from)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn bases_on_disk(dir: &Path) -> Vec<u64> {
    list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(b, _)| b)
        .collect()
}

fn entry(offset: u64, ts: i64, payload: &[u8]) -> Entry {
    (offset, ts, payload.to_vec())
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.append(10, &[b"a", b"bb"]).unwrap(), 0..2);
    assert_eq!(log.append(20, &[]).unwrap(), 2..2);
    assert_eq!(log.append(-30, &[b""]).unwrap(), 2..3);
    log.sync().unwrap();
    assert_eq!(
        read_all(&log, 0),
        vec![entry(0, 10, b"a"), entry(1, 10, b"bb"), entry(2, -30, b"")]
    );
    assert_eq!(log.first_offset(), 0);
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.total_bytes(), 3 * HEADER_LEN as u64 + 3);
}

#[test]
fn reopen_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<Vec<u8>> = (0..5).map(fixed).collect();
    {
        let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
        append_owned(&mut log, 1, &first);
        log.sync().unwrap();
    }
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 5);
    assert_eq!(log.total_bytes(), 5 * 36);
    assert_eq!(log.append(2, &[b"later"]).unwrap(), 5..6);
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 6);
    assert_eq!(all[4], entry(4, 1, &fixed(4)));
    assert_eq!(all[5], entry(5, 2, b"later"));
}

#[test]
fn reader_sees_unsynced_appends_up_to_its_creation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    log.append(1, &[b"a", b"b"]).unwrap();
    let early = log.read_from(0).unwrap();
    log.append(2, &[b"c"]).unwrap();
    assert_eq!(early.count(), 2);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn oversized_payload_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    let err = log.append(1, &[b"ok", &big]).unwrap_err();
    assert!(
        matches!(err, LogError::TooLarge { len, max } if len == big.len() && max == MAX_PAYLOAD_LEN)
    );
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.total_bytes(), 0);
    assert_eq!(log.append(1, &[b"ok"]).unwrap(), 0..1);
}

#[test]
fn a_failed_write_poisons_the_log_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    log.append(1, &[b"kept"]).unwrap();
    log.sync().unwrap();
    // A read-only handle makes the next write fail like a full or failing disk would.
    log.active.file = File::open(&log.active.path).unwrap();
    assert!(matches!(
        log.append(2, &[b"lost"]),
        Err(LogError::Io { .. })
    ));
    assert!(matches!(log.append(2, &[b"x"]), Err(LogError::Poisoned)));
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    assert_eq!(log.next_offset(), 1);
    assert_eq!(read_all(&log, 0), vec![entry(0, 1, b"kept")]);
    drop(log);
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.append(3, &[b"again"]).unwrap(), 1..2);
}

/// A segment holding three records and then a fourth; returns its bytes and where the fourth
/// record starts.
fn torn_tail_fixture() -> (Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    append_owned(&mut log, 1, &[fixed(0), fixed(1), fixed(2)]);
    let start = log.total_bytes();
    log.append(2, &[b"the last record"]).unwrap();
    (fs::read(segment_path(dir.path(), 0)).unwrap(), start)
}

/// Opens a log whose only segment holds `bytes` (the fixture, damaged in its fourth record)
/// and checks the first three records survive intact and appends continue at offset 3.
fn assert_recovers_three(bytes: &[u8], start: u64) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 0), bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.total_bytes(), start);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 0)).unwrap().len(),
        start,
        "tail truncated on disk"
    );
    assert_eq!(log.append(3, &[b"new"]).unwrap(), 3..4);
    let expected: Vec<Entry> = (0..3)
        .map(|i| entry(i, 1, &fixed(i)))
        .chain([entry(3, 3, b"new")])
        .collect();
    assert_eq!(read_all(&log, 0), expected);
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut() {
    let (bytes, start) = torn_tail_fixture();
    for cut in start as usize..bytes.len() {
        assert_recovers_three(&bytes[..cut], start);
    }
}

#[test]
fn flipped_byte_anywhere_in_the_last_record_is_cut() {
    let (bytes, start) = torn_tail_fixture();
    for at in start as usize..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        assert_recovers_three(&damaged, start);
    }
}

#[test]
fn corruption_inside_the_last_segment_drops_everything_after_it() {
    let (mut bytes, _) = torn_tail_fixture();
    // Last payload byte of record 1: records 1..4 go, record 0 stays.
    bytes[2 * 36 - 1] ^= 0xFF;
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
    let log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.next_offset(), 1);
    assert_eq!(read_all(&log, 0), vec![entry(0, 1, &fixed(0))]);
}

#[test]
fn segments_roll_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..7).map(fixed).collect();
    {
        // 36-byte records: two fit in 100 bytes, a third would not.
        let mut log = SegmentLog::open(dir.path(), opts(100)).unwrap();
        assert_eq!(append_owned(&mut log, 5, &payloads), 0..7);
        log.sync().unwrap();
        assert_eq!(bases_on_disk(dir.path()), vec![0, 2, 4, 6]);
        assert_eq!(log.total_bytes(), 7 * 36);
    }
    let log = SegmentLog::open(dir.path(), opts(100)).unwrap();
    assert_eq!(log.next_offset(), 7);
    assert_eq!(log.total_bytes(), 7 * 36);
    let expected: Vec<Entry> = (0..7).map(|i| entry(i, 5, &fixed(i))).collect();
    assert_eq!(read_all(&log, 0), expected);
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts(10)).unwrap();
    log.append(1, &[b"first", b"second"]).unwrap();
    log.append(1, &[b"third"]).unwrap();
    assert_eq!(bases_on_disk(dir.path()), vec![0, 1, 2]);
    assert_eq!(read_all(&log, 1).len(), 2);
}

#[test]
fn read_from_mid_segment_and_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts(100)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..7).map(fixed).collect();
    append_owned(&mut log, 5, &payloads);
    for from in 0..=7 {
        let expected: Vec<Entry> = (from..7).map(|i| entry(i, 5, &fixed(i))).collect();
        assert_eq!(read_all(&log, from), expected, "from {from}");
    }
    assert!(matches!(
        log.read_from(8),
        Err(LogError::OffsetBeyondEnd {
            requested: 8,
            next: 7
        })
    ));
}

#[test]
fn corrupt_record_in_an_earlier_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts(100)).unwrap();
        append_owned(&mut log, 5, &(0..5).map(fixed).collect::<Vec<_>>());
    }
    let path = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 0xFF; // header of record 1
    fs::write(&path, &bytes).unwrap();
    let log = SegmentLog::open(dir.path(), opts(100)).unwrap();
    let mut reader = log.read_from(0).unwrap();
    assert_eq!(reader.next().unwrap().unwrap(), entry(0, 5, &fixed(0)));
    let err = reader.next().unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Corrupt {
                position: 36,
                reason: CorruptReason::ChecksumMismatch,
                ..
            }
        ),
        "{err}"
    );
    assert!(reader.next().is_none());
    // Offsets past the damage stay readable.
    assert_eq!(read_all(&log, 2).len(), 3);
}

/// Five segments of two records each (bases 0, 2, 4, 6, 8), segment `i` stamped `100 * (i + 1)`.
fn five_segments(dir: &Path, opts: LogOptions) -> SegmentLog {
    let mut log = SegmentLog::open(dir, opts).unwrap();
    for seg in 0..5u64 {
        let ts = 100 * (seg as i64 + 1);
        append_owned(&mut log, ts, &[fixed(2 * seg), fixed(2 * seg + 1)]);
    }
    log.sync().unwrap();
    assert_eq!(bases_on_disk(dir), vec![0, 2, 4, 6, 8]);
    log
}

#[test]
fn retention_by_size_deletes_oldest_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 100,
        max_total_bytes: Some(150),
        max_age_ms: None,
    };
    let mut log = five_segments(dir.path(), opts);
    let report = log.enforce_retention(0, u64::MAX).unwrap();
    assert_eq!(
        report,
        RetentionReport {
            segments_deleted: 3,
            bytes_deleted: 3 * 72,
            first_offset: 6
        }
    );
    assert_eq!(bases_on_disk(dir.path()), vec![6, 8]);
    assert_eq!(log.total_bytes(), 144);
    assert!(matches!(
        log.read_from(5),
        Err(LogError::OffsetTruncated {
            requested: 5,
            oldest: 6
        })
    ));
    assert_eq!(read_all(&log, 6).len(), 4);
    assert_eq!(
        log.enforce_retention(0, u64::MAX).unwrap().segments_deleted,
        0
    );
}

#[test]
fn reader_reports_a_segment_deleted_before_it_got_there() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 100,
        max_total_bytes: Some(0),
        max_age_ms: None,
    };
    let mut log = five_segments(dir.path(), opts);
    let mut reader = log.read_from(0).unwrap();
    log.enforce_retention(0, u64::MAX).unwrap();
    assert!(matches!(reader.next(), Some(Err(LogError::Io { .. }))));
    assert!(reader.next().is_none());
}

#[test]
fn retention_never_deletes_the_active_segment_and_offsets_survive() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 100,
        max_total_bytes: Some(0),
        max_age_ms: None,
    };
    let mut log = five_segments(dir.path(), opts);
    assert_eq!(log.enforce_retention(0, u64::MAX).unwrap().first_offset, 8);
    assert_eq!(bases_on_disk(dir.path()), vec![8]);
    drop(log);
    let mut log = SegmentLog::open(dir.path(), opts).unwrap();
    assert_eq!((log.first_offset(), log.next_offset()), (8, 10));
    assert_eq!(log.append(1, &[b"x"]).unwrap(), 10..11);
}

#[test]
fn retention_honours_keep_from() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 100,
        max_total_bytes: Some(0),
        max_age_ms: None,
    };
    let mut log = five_segments(dir.path(), opts);
    // Offset 3 lives in segment 2, so only segment 0 (offsets 0..2) may go.
    assert_eq!(log.enforce_retention(0, 3).unwrap().first_offset, 2);
    // Segment 2 ends exactly at the protected offset 4.
    assert_eq!(log.enforce_retention(0, 4).unwrap().first_offset, 4);
    assert_eq!(bases_on_disk(dir.path()), vec![4, 6, 8]);
}

#[test]
fn retention_by_age_uses_each_segments_newest_record() {
    let opts = LogOptions {
        segment_bytes: 100,
        max_total_bytes: None,
        max_age_ms: Some(150),
    };
    for reopen in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = five_segments(dir.path(), opts);
        if reopen {
            drop(log);
            log = SegmentLog::open(dir.path(), opts).unwrap();
        }
        // Cutoff 250: segments stamped 100 and 200 are older; 300 is not.
        let report = log.enforce_retention(400, u64::MAX).unwrap();
        assert_eq!(report.segments_deleted, 2, "reopen {reopen}");
        assert_eq!(report.first_offset, 4);
        // Nothing protected by keep_from may go, however old.
        let report = log.enforce_retention(10_000, 6).unwrap();
        assert_eq!(report.first_offset, 6, "reopen {reopen}");
        assert_eq!(bases_on_disk(dir.path()), vec![6, 8]);
    }
}

fn batches() -> impl Strategy<Value = Vec<(i64, Vec<Vec<u8>>)>> {
    proptest::collection::vec(
        (
            any::<i64>(),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8),
        ),
        0..12,
    )
}

/// Appends every batch and returns what the log should hold.
fn append_batches(log: &mut SegmentLog, batches: &[(i64, Vec<Vec<u8>>)]) -> Vec<Entry> {
    let mut expected = Vec::new();
    for (ts, payloads) in batches {
        let range = append_owned(log, *ts, payloads);
        assert_eq!(range.end - range.start, payloads.len() as u64);
        expected.extend(range.zip(payloads).map(|(o, p)| (o, *ts, p.clone())));
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_batches_round_trip(
        batches in batches(),
        segment_bytes in 64u64..1024,
        from_fraction in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        let expected = append_batches(&mut log, &batches);
        log.sync().unwrap();
        prop_assert_eq!(read_all(&log, 0), expected.clone());
        drop(log);
        let log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        prop_assert_eq!(log.next_offset(), expected.len() as u64);
        let from = (expected.len() as f64 * from_fraction) as usize;
        prop_assert_eq!(read_all(&log, from as u64), expected[from..].to_vec());
    }

    #[test]
    fn garbage_after_the_last_segment_never_loses_complete_records(
        batches in batches(),
        segment_bytes in 64u64..1024,
        garbage in proptest::collection::vec(any::<u8>(), 1..200),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        let expected = append_batches(&mut log, &batches);
        log.sync().unwrap();
        let last = segment_path(dir.path(), log.active.base);
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&last).unwrap();
        file.write_all(&garbage).unwrap();
        drop(file);

        let mut log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        let recovered = read_all(&log, 0);
        // Garbage that happens to frame a valid record (a 2^-32 chance) is kept, never less.
        prop_assert!(recovered.len() >= expected.len());
        prop_assert_eq!(&recovered[..expected.len()], &expected[..]);
        let next = log.next_offset();
        prop_assert_eq!(log.append(0, &[b"after"]).unwrap(), next..next + 1);
    }

    #[test]
    fn crash_after_sync_keeps_every_synced_record(
        synced in batches(),
        unsynced in batches(),
        segment_bytes in prop_oneof![Just(LogOptions::default().segment_bytes), 256u64..2048],
        cut_fraction in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        let expected = append_batches(&mut log, &synced);
        log.sync().unwrap();
        let synced_segment = log.active.path.clone();
        let synced_len = log.active.bytes;
        append_batches(&mut log, &unsynced);
        let last = log.active.path.clone();
        drop(log); // the crash: no sync

        // The OS may have kept any prefix of the unsynced tail of the last segment.
        let len = fs::metadata(&last).unwrap().len();
        let floor = if last == synced_segment { synced_len } else { 0 };
        let keep = floor + ((len - floor) as f64 * cut_fraction) as u64;
        OpenOptions::new().write(true).open(&last).unwrap().set_len(keep).unwrap();

        let log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        let recovered = read_all(&log, 0);
        prop_assert!(recovered.len() >= expected.len());
        prop_assert_eq!(&recovered[..expected.len()], &expected[..]);
        prop_assert_eq!(log.next_offset(), recovered.len() as u64);
    }
}

// Failures and recovery, through the `fault` seam (a full disk, a failing fsync, no
// descriptor left).

use super::fault::{self, Fault};

fn payloads(range: Range<u64>) -> Vec<Vec<u8>> {
    range.map(fixed).collect()
}

fn try_append(log: &mut SegmentLog, ts: i64, range: Range<u64>) -> Result<Range<u64>, LogError> {
    let owned = payloads(range);
    let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    log.append(ts, &refs)
}

fn expected(range: Range<u64>) -> Vec<Entry> {
    range.map(|i| entry(i, 1, &fixed(i))).collect()
}

#[test]
fn a_write_that_fills_the_disk_leaves_no_part_of_its_batch_even_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    try_append(&mut log, 1, 0..5).unwrap();
    log.sync().unwrap();
    fault::inject(Fault::Full(50));
    assert!(matches!(
        try_append(&mut log, 1, 5..15),
        Err(LogError::Io { .. })
    ));
    assert!(log.is_poisoned());
    assert!(matches!(log.append(1, &[b"x"]), Err(LogError::Poisoned)));
    // On disk only what was synced: a crash now replays none of the refused batch.
    assert_eq!(bases_on_disk(dir.path()), vec![0]);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 0)).unwrap().len(),
        5 * 36
    );
    let crashed = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&crashed, 0), expected(0..5));
    drop(crashed);
    // Still full: recovery checks that the failed write would fit, and fails.
    assert!(log.recover().is_err());
    assert!(log.is_poisoned());
    // Space freed: the same log recovers in place and takes the retried batch whole.
    fault::clear();
    log.recover().unwrap();
    assert!(!log.is_poisoned());
    assert_eq!(try_append(&mut log, 1, 5..15).unwrap(), 5..15);
    log.sync().unwrap();
    let reopened = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(read_all(&reopened, 0), expected(0..15));
}

#[test]
fn a_failed_sync_discards_every_record_appended_since_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
    try_append(&mut log, 1, 0..3).unwrap();
    log.sync().unwrap();
    try_append(&mut log, 1, 3..5).unwrap();
    try_append(&mut log, 1, 5..8).unwrap();
    fault::inject(Fault::Sync);
    assert!(matches!(log.sync(), Err(LogError::Io { .. })));
    // The device still fails: recovery (which syncs what it reopens) fails too, and can
    // be tried again.
    assert!(log.recover().is_err());
    assert!(log.is_poisoned());
    fault::clear();
    log.recover().unwrap();
    assert_eq!(log.next_offset(), 3);
    assert_eq!(read_all(&log, 0), expected(0..3));
}

#[test]
fn a_batch_across_a_roll_is_undone_in_both_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts(4 * 36)).unwrap();
    try_append(&mut log, 1, 0..3).unwrap();
    log.sync().unwrap();
    // One record completes segment 0, the roll creates segment 4, which fills up.
    fault::inject(Fault::Full(3 * 36));
    assert!(try_append(&mut log, 1, 3..9).is_err());
    assert_eq!(bases_on_disk(dir.path()), vec![0]);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 0)).unwrap().len(),
        3 * 36
    );
    fault::clear();
    log.recover().unwrap();
    assert_eq!(try_append(&mut log, 1, 3..9).unwrap(), 3..9);
    log.sync().unwrap();
    assert_eq!(bases_on_disk(dir.path()), vec![0, 4, 8]);
    assert_eq!(read_all(&log, 0), expected(0..9));
}

#[test]
fn no_descriptor_for_a_new_segment_refuses_the_batch_until_one_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts(4 * 36)).unwrap();
    try_append(&mut log, 1, 0..3).unwrap();
    log.sync().unwrap();
    fault::inject(Fault::Create);
    assert!(try_append(&mut log, 1, 3..6).is_err());
    assert_eq!(
        read_all(&SegmentLog::open(dir.path(), opts(4 * 36)).unwrap(), 0),
        expected(0..3)
    );
    fault::clear();
    log.recover().unwrap();
    assert_eq!(try_append(&mut log, 1, 3..6).unwrap(), 3..6);
}

#[derive(Clone, Debug)]
enum Op {
    Append(u64),
    Sync,
    Fail(Fault),
    Recover,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (1u64..6).prop_map(Op::Append),
        3 => Just(Op::Sync),
        1 => (0usize..300).prop_map(|n| Op::Fail(Fault::Full(n))),
        1 => Just(Op::Fail(Fault::Sync)),
        1 => Just(Op::Fail(Fault::Create)),
        2 => Just(Op::Recover),
    ];
    prop::collection::vec(op, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever fails when, the log ends holding exactly the records whose sync returned,
    /// in order, and offsets continue from them.
    #[test]
    fn after_any_failures_the_log_holds_exactly_what_was_synced(ops in ops()) {
        fault::clear();
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), opts(5 * 36)).unwrap();
        let (mut synced, mut next) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Append(n) => {
                    if try_append(&mut log, 1, next..next + n).is_ok() {
                        next += n;
                    } else {
                        next = synced;
                    }
                }
                Op::Sync => {
                    if log.sync().is_ok() {
                        synced = next;
                    } else {
                        next = synced;
                    }
                }
                Op::Fail(f) => fault::inject(f),
                Op::Recover => {
                    fault::clear();
                    log.recover().unwrap();
                    prop_assert_eq!(log.next_offset(), next);
                }
            }
        }
        fault::clear();
        log.recover().unwrap();
        prop_assert!(log.next_offset() >= synced);
        drop(log);
        // A crash right now: what is on disk beyond the synced records was never refused
        // (appended, not yet synced), so it may stay; nothing refused may.
        let log = SegmentLog::open(dir.path(), opts(5 * 36)).unwrap();
        prop_assert_eq!(log.next_offset(), next);
        prop_assert_eq!(read_all(&log, 0), expected(0..next));
    }
}
