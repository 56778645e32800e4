//! The demo job against a brute-force in-memory computation of the same figures.
//!
//! The reference below shares nothing with the job but the event type and the rules of the
//! queries: it decides lateness from the arrival order, then computes every minute's PV/UV
//! and DAU (new / returning, with TTL) by direct counting over hash maps.

use std::collections::{BTreeMap, HashMap, HashSet};

use strata::Settings;
use strata_demo::{
    DauRow, Event, Job, JobConfig, PvRow, Row, StreamConfig, DAY_MS, MINUTES_PER_DAY, MINUTE_MS,
};
use strata_tests::{StoreKind, TestHome, STORE_KINDS};

/// Events that are not late: an event is late when the watermark before it (Flink's
/// bounded out-of-orderness: max timestamp so far - delay - 1) has passed its minute.
fn on_time(events: &[Event], delay: u64) -> (Vec<Event>, u64) {
    let (mut max, mut late, mut kept) = (0u64, 0u64, Vec::new());
    for e in events {
        let watermark = max.saturating_sub(delay).saturating_sub(1);
        let minute_last_ms = (e.ts / MINUTE_MS + 1) * MINUTE_MS - 1;
        if minute_last_ms <= watermark {
            late += 1;
        } else {
            kept.push(*e);
        }
        max = max.max(e.ts);
    }
    (kept, late)
}

/// Every minute of a day from `first_minute` (a minute index since the epoch) to the day's
/// end, as (minute, window end).
fn rest_of_day(first_minute: u64) -> impl Iterator<Item = u64> {
    let day_end = (first_minute / MINUTES_PER_DAY + 1) * MINUTES_PER_DAY;
    first_minute..day_end
}

fn reference_pv(events: &[Event]) -> Vec<PvRow> {
    let mut by_page_day: HashMap<(u32, u64), Vec<(u64, u64)>> = HashMap::new();
    for e in events {
        by_page_day
            .entry((e.page, e.ts / DAY_MS))
            .or_default()
            .push((e.ts / MINUTE_MS, e.device));
    }
    let mut rows = Vec::new();
    for ((page, day), mut views) in by_page_day {
        views.sort_unstable();
        let mut devices = HashSet::new();
        let mut next = 0;
        for minute in rest_of_day(views[0].0) {
            while next < views.len() && views[next].0 <= minute {
                devices.insert(views[next].1);
                next += 1;
            }
            rows.push(PvRow {
                page,
                window_start: day * DAY_MS,
                window_end: (minute + 1) * MINUTE_MS,
                pv: next as u64,
                uv: devices.len() as u64,
            });
        }
    }
    rows.sort_unstable();
    rows
}

fn reference_dau(events: &[Event], ttl_ms: u64) -> Vec<DauRow> {
    // Minute-level dedup.
    let mut per_minute: BTreeMap<u64, HashSet<(u32, u64)>> = BTreeMap::new();
    for e in events {
        per_minute
            .entry(e.ts / MINUTE_MS)
            .or_default()
            .insert((e.channel, e.device));
    }
    // Day-level dedup in minute order, with (first day, last day, written at) per device
    // and TTL measured at the end of the minute.
    let mut seen: HashMap<(u32, u64), (u64, u64, u64)> = HashMap::new();
    let mut increments: BTreeMap<(u32, u64), BTreeMap<u64, [u64; 3]>> = BTreeMap::new();
    for (minute, pairs) in per_minute {
        let now = (minute + 1) * MINUTE_MS;
        let today = minute / MINUTES_PER_DAY;
        for (channel, device) in pairs {
            let live = seen
                .get(&(channel, device))
                .filter(|s| s.2 + ttl_ms > now)
                .copied();
            let (first, returning) = match live {
                Some((_, last, _)) if last == today => continue,
                Some((first, _, _)) => (first, 1),
                None => (today, 0),
            };
            seen.insert((channel, device), (first, today, now));
            let inc = increments
                .entry((channel, today))
                .or_default()
                .entry(minute)
                .or_default();
            inc[0] += 1;
            inc[1] += 1 - returning;
            inc[2] += returning;
        }
    }
    let mut rows = Vec::new();
    for ((channel, day), incs) in increments {
        let first = *incs.keys().next().expect("at least one minute");
        let mut total = [0u64; 3];
        for minute in rest_of_day(first) {
            if let Some(i) = incs.get(&minute) {
                (0..3).for_each(|k| total[k] += i[k]);
            }
            rows.push(DauRow {
                channel,
                window_start: day * DAY_MS,
                window_end: (minute + 1) * MINUTE_MS,
                dau: total[0],
                new: total[1],
                returning: total[2],
            });
        }
    }
    rows.sort_unstable();
    rows
}

struct Output {
    pv: Vec<PvRow>,
    dau: Vec<DauRow>,
    late: u64,
}

fn run_job(kind: StoreKind, stream: &StreamConfig, cfg: &JobConfig, budget: u64) -> Output {
    let home = TestHome::new(kind);
    let settings = Settings {
        memory_budget_bytes: budget,
        ..Settings::default()
    };
    let mut job = Job::open(home.builder(settings), cfg.clone()).expect("open");
    let (mut pv, mut dau) = (Vec::new(), Vec::new());
    let mut last_end = 0;
    let mut out = |row: Row| {
        let end = match row {
            Row::Pv(r) => {
                pv.push(r);
                r.window_end
            }
            Row::Dau(r) => {
                dau.push(r);
                r.window_end
            }
        };
        assert!(end >= last_end, "rows come out in window-end order");
        last_end = end;
    };
    for e in stream.generate().expect("stream") {
        job.process(&e, &mut out).expect("process");
    }
    let stats = job.finish(&mut out).expect("finish");
    assert_eq!(stats.events, stream.events);
    assert_eq!(stats.pv_rows, pv.len() as u64);
    assert_eq!(stats.dau_rows, dau.len() as u64);
    assert!(stats.checkpoints >= 2, "{} checkpoints", stats.checkpoints);
    let db = job.db().clone();
    drop(job);
    db.close().expect("close");
    pv.sort_unstable();
    dau.sort_unstable();
    Output {
        pv,
        dau,
        late: stats.late_dropped,
    }
}

fn check(stream: &StreamConfig, cfg: &JobConfig, budget: u64) {
    let events: Vec<Event> = stream.generate().expect("stream").collect();
    let (kept, late) = on_time(&events, cfg.watermark_delay_ms);
    let want_pv = reference_pv(&kept);
    let want_dau = reference_dau(&kept, cfg.seen_ttl_ms);
    for kind in STORE_KINDS {
        let got = run_job(kind, stream, cfg, budget);
        assert_eq!(got.late, late, "{kind:?}: late events");
        assert_eq!(got.pv.len(), want_pv.len(), "{kind:?}: PV/UV rows");
        for (g, w) in got.pv.iter().zip(&want_pv) {
            assert_eq!(g, w, "{kind:?}: PV/UV row");
        }
        assert_eq!(got.dau.len(), want_dau.len(), "{kind:?}: DAU rows");
        for (g, w) in got.dau.iter().zip(&want_dau) {
            assert_eq!(g, w, "{kind:?}: DAU row");
        }
    }
}

/// Skewed, out of order, with late events, a one-day TTL (so some devices come back as
/// new) and a memory budget small enough that state moves through chunks and table files.
#[test]
fn demo_job_matches_brute_force() {
    let stream = StreamConfig {
        events: 30_000,
        days: 3,
        pages: 12,
        devices: 3_000,
        channels: 3,
        skew: 1.0,
        out_of_order_ms: 3 * MINUTE_MS,
        late_fraction: 0.01,
        seed: 7,
        ..StreamConfig::default()
    };
    let cfg = JobConfig {
        watermark_delay_ms: stream.out_of_order_ms,
        seen_ttl_ms: DAY_MS,
        checkpoint_every_ms: Some(4 * 60 * MINUTE_MS),
        ..JobConfig::default()
    };
    let events: Vec<Event> = stream.generate().unwrap().collect();
    let (kept, late) = on_time(&events, cfg.watermark_delay_ms);
    assert!(
        late > 100,
        "{late} late events: the stream must exercise lateness"
    );
    // The figures exercise every branch: returning devices, devices new again after their
    // record expired, and out-of-order first views.
    let dau = reference_dau(&kept, cfg.seen_ttl_ms);
    let last_day_end = dau.iter().filter(|r| r.window_end == stream.end_ms());
    let (new, returning) =
        last_day_end.fold((0, 0), |(n, r), row| (n + row.new, r + row.returning));
    assert!(new > 0 && returning > 0, "new {new}, returning {returning}");
    let expired_again = reference_dau(&kept, 10 * DAY_MS)
        .iter()
        .zip(&dau)
        .any(|(long, short)| long.new != short.new);
    assert!(expired_again, "the one-day TTL changes some figures");
    check(&stream, &cfg, 1 << 20);
}

/// In order (no delay, nothing late), uniform, on one day, with a long TTL.
#[test]
fn demo_job_matches_brute_force_in_order() {
    let stream = StreamConfig {
        events: 8_000,
        days: 1,
        pages: 5,
        devices: 500,
        channels: 2,
        skew: 0.0,
        out_of_order_ms: 0,
        late_fraction: 0.0,
        seed: 11,
        ..StreamConfig::default()
    };
    let cfg = JobConfig {
        watermark_delay_ms: 0,
        seen_ttl_ms: 30 * DAY_MS,
        checkpoint_every_ms: Some(6 * 60 * MINUTE_MS),
        ..JobConfig::default()
    };
    check(&stream, &cfg, 8 << 20);
}

/// A bad configuration is an error, not a panic.
#[test]
fn demo_job_rejects_bad_settings() {
    let home = TestHome::new(StoreKind::Memory);
    let cfg = JobConfig {
        seen_ttl_ms: 0,
        ..JobConfig::default()
    };
    let err = Job::open(home.builder(Settings::default()), cfg).err();
    assert!(
        matches!(err, Some(strata::Error::InvalidArgument(_))),
        "{err:?}"
    );
    let stream = StreamConfig {
        pages: 0,
        ..StreamConfig::default()
    };
    assert!(stream.generate().is_err());
}
