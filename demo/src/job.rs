//! The job: two real-time warehouse queries over one stream, on Strata keyed state.
//!
//! **Event time and watermarks.** The watermark follows Flink's bounded out-of-orderness
//! rule: `W = max event time seen - delay - 1`, advanced after every event. A window (or
//! minute slice) `[s, e)` fires when `W >= e - 1`; an event whose minute slice has already
//! fired is late, dropped and counted (Flink's slicing window operator does the same). At
//! the end of the input the watermark jumps to the end of time and every window fires.
//! The database's clock follows event time (the end of the minute being fired), so state
//! TTL is measured in event time and the job is deterministic.
//!
//! **PV/UV** per page: a CUMULATE window with a one-day size and a one-minute step. For
//! every minute from a page's first view of the day to the end of the day it emits the
//! day's views and distinct devices up to the end of that minute.
//! - `uv-devices` (map; key page, namespace day, user key device): the minute of the
//!   device's first view that day. A device first seen in an earlier minute than recorded
//!   (out of order) moves its count to that minute.
//! - `pv-minute` (reducing, element-wise sum; key page, namespace minute): the views and new
//!   devices of one minute, folded in memory and cleared when the minute fires.
//! - `pv-window` (value; key page, namespace day): the cumulative counts and the timestamp
//!   of the next firing. One event-time timer per (page, day) walks the day minute by minute.
//!
//! **DAU** per channel, with new and returning devices:
//! 1. minute-level dedup: `minute-devices` (map; key channel, namespace minute, user key
//!    device) collects the distinct devices of each minute; a timer per (channel, minute)
//!    fires when the minute closes and hands them, in device order, to step 2;
//! 2. day-level dedup: `device-seen` (value with TTL; key channel, namespace device) holds the
//!    first-seen and last-seen days. A device whose last-seen day is today is a duplicate;
//!    otherwise it counts toward DAU as new (no state, or state expired by TTL) or
//!    returning. Each minute's devices are read with one batched `value_multi_get`;
//! 3. `dau-window` (value; key channel, namespace day) holds the cumulative DAU, new and
//!    returning counts, emitted every minute to the end of the day like PV/UV.
//!
//! All keys and namespaces are big-endian integers, so map iteration is in numeric order.

use std::sync::Arc;

use strata::{
    Db, DbBuilder, Error, KeyGroupRange, KeyGroups, KeyedBackend, ManualClock, RestoreSource,
    Result, State, StateDescriptor, StateKind, TimeDomain, Timer, TimerService, TtlConfig,
};

use crate::stream::{Event, DAY_MS, MINUTE_MS};

/// How the job runs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Bounded out-of-orderness of the watermark (ms).
    pub watermark_delay_ms: u64,
    /// Time to live of a device's first-seen / last-seen days (event-time ms).
    pub seen_ttl_ms: u64,
    /// Take a checkpoint (`Db::flush`) every this much event time.
    pub checkpoint_every_ms: Option<u64>,
    /// Flink max parallelism (number of key groups).
    pub max_parallelism: u16,
    /// The key groups this instance owns (`None`: all). An instance sees every event (so
    /// every instance has the same watermark) and applies only those whose key (page for
    /// PV/UV, channel for DAU) it owns, as one of several parallel subtasks would.
    pub key_groups: Option<KeyGroupRange>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            watermark_delay_ms: 2 * MINUTE_MS,
            seen_ttl_ms: 30 * DAY_MS,
            checkpoint_every_ms: Some(6 * 60 * MINUTE_MS),
            max_parallelism: 128,
            key_groups: None,
        }
    }
}

/// One PV/UV result: a page's views and distinct devices in `[window_start, window_end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PvRow {
    /// Page id.
    pub page: u32,
    /// Start of the day (ms).
    pub window_start: u64,
    /// End of the minute (ms, exclusive).
    pub window_end: u64,
    /// Page views.
    pub pv: u64,
    /// Distinct devices.
    pub uv: u64,
}

/// One DAU result: a channel's daily active devices in `[window_start, window_end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DauRow {
    /// Channel.
    pub channel: u32,
    /// Start of the day (ms).
    pub window_start: u64,
    /// End of the minute (ms, exclusive).
    pub window_end: u64,
    /// Distinct active devices so far today.
    pub dau: u64,
    /// Of those, devices with no earlier day on record (or whose record expired).
    pub new: u64,
    /// Of those, devices seen on an earlier day.
    pub returning: u64,
}

/// A result row. Rows come out in window-end order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// A PV/UV row.
    Pv(PvRow),
    /// A DAU row.
    Dau(DauRow),
}

/// What the job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Events read.
    pub events: u64,
    /// Events dropped because their minute had already fired.
    pub late_dropped: u64,
    /// PV/UV rows emitted.
    pub pv_rows: u64,
    /// DAU rows emitted.
    pub dau_rows: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Checkpoints taken.
    pub checkpoints: u64,
}

/// Where a job is in its input and time: what a checkpoint must record besides the state
/// (Flink keeps it in the operator's non-keyed state and the source's offsets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// Largest event timestamp seen.
    pub max_ts: u64,
    /// The watermark.
    pub watermark: u64,
    /// Every timer at or before this has fired.
    pub fired_through: u64,
    /// When the next flush-checkpoint is due (`checkpoint_every_ms` mode).
    pub next_checkpoint: Option<u64>,
}

/// The running job. Feed it events in arrival order with [`Job::process`], then call
/// [`Job::finish`]. Not thread-safe (`&mut self`), like one Flink subtask.
pub struct Job {
    backend: KeyedBackend,
    clock: Arc<ManualClock>,
    cfg: JobConfig,
    uv_devices: State,
    pv_minute: State,
    pv_window: State,
    minute_devices: State,
    seen: State,
    dau_window: State,
    pv_timers: TimerService,
    dedup_timers: TimerService,
    dau_timers: TimerService,
    max_ts: u64,
    /// The current watermark (Flink's: no more events at or before it).
    watermark: u64,
    /// Timers are all minute ends minus one; every one at or before this has fired.
    fired_through: u64,
    next_checkpoint: Option<u64>,
    stats: JobStats,
}

const EVENT_TIME: TimeDomain = TimeDomain::EventTime;

/// Element-wise sum of two `(i64 LE, i64 LE)` pairs.
fn sum_pairs(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (a0, a1) = pair(a);
    let (b0, b1) = pair(b);
    pair_bytes(a0 + b0, a1 + b1)
}

fn pair(v: &[u8]) -> (i64, i64) {
    let n = |r: std::ops::Range<usize>| {
        v.get(r)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i64::from_le_bytes)
    };
    (n(0..8), n(8..16))
}

fn pair_bytes(a: i64, b: i64) -> Vec<u8> {
    let mut v = a.to_le_bytes().to_vec();
    v.extend_from_slice(&b.to_le_bytes());
    v
}

fn u64s<const N: usize>(what: &str, v: &[u8]) -> Result<[u64; N]> {
    if v.len() != N * 8 {
        return Err(Error::corruption(
            "demo job",
            format!("{what}: {} bytes, expected {}", v.len(), N * 8),
        ));
    }
    let mut out = [0; N];
    for (o, c) in out.iter_mut().zip(v.chunks_exact(8)) {
        *o = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    Ok(out)
}

fn u64s_bytes(vals: &[u64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn minute_of(ts: u64) -> u32 {
    (ts / MINUTE_MS) as u32
}

fn day_of(ts: u64) -> u32 {
    (ts / DAY_MS) as u32
}

/// The window end of the minute containing `ts`, minus one (the firing timestamp).
fn minute_timer(ts: u64) -> u64 {
    (ts / MINUTE_MS + 1) * MINUTE_MS - 1
}

/// The latest timer timestamp (a minute end minus one) at or before `wm`; 0 if none.
fn last_timer_through(wm: u64) -> u64 {
    (wm.saturating_add(1) / MINUTE_MS * MINUTE_MS).saturating_sub(1)
}

fn ns_u32(ns: &[u8]) -> Result<u32> {
    ns.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| Error::corruption("demo job", "bad namespace"))
}

impl Job {
    /// Opens the database from `builder` (the job sets its clock) and registers the
    /// job's states and timer queues.
    pub fn open(builder: DbBuilder, cfg: JobConfig) -> Result<Job> {
        if cfg.seen_ttl_ms == 0 {
            return Err(Error::invalid("the seen-state TTL must be positive"));
        }
        let clock = Arc::new(ManualClock::new(0));
        let builder = match cfg.key_groups {
            Some(r) => builder.key_groups(KeyGroups::from(r)),
            None => builder,
        };
        let db = builder.clock(clock.clone()).open()?;
        Self::with_db(db, clock, cfg, JobProgress::default())
    }

    /// Restores the job from checkpoints (`sources`: every instance's checkpoint of one
    /// checkpoint id) into the database `builder` describes, for this instance's key groups,
    /// at `progress` (recorded with the checkpoint).
    pub fn restore(
        builder: DbBuilder,
        cfg: JobConfig,
        sources: &[RestoreSource],
        progress: JobProgress,
    ) -> Result<Job> {
        let clock = Arc::new(ManualClock::new(0));
        clock.advance_to(progress.fired_through.saturating_add(1));
        let groups = cfg.key_groups.map(KeyGroups::from);
        let db = builder.clock(clock.clone()).restore(sources, groups)?;
        Self::with_db(db, clock, cfg, progress)
    }

    fn with_db(
        db: Db,
        clock: Arc<ManualClock>,
        cfg: JobConfig,
        progress: JobProgress,
    ) -> Result<Job> {
        if cfg.seen_ttl_ms == 0 {
            return Err(Error::invalid("the seen-state TTL must be positive"));
        }
        let max_par = cfg.max_parallelism;
        let range = cfg
            .key_groups
            .unwrap_or(KeyGroupRange::new(0, max_par.saturating_sub(1)));
        let backend = KeyedBackend::new(db, max_par, range)?;
        // Every key and namespace is a 4-byte integer.
        let reg = |name: &str, kind: StateKind| {
            backend.register(StateDescriptor::new(name, kind).with_fixed_lengths(4, 4))
        };
        let uv_devices = reg("uv-devices", StateKind::Map)?;
        let pv_minute = reg("pv-minute", StateKind::Reducing(Arc::new(sum_pairs)))?;
        let pv_window = reg("pv-window", StateKind::Value)?;
        let minute_devices = reg("minute-devices", StateKind::Map)?;
        let dau_window = reg("dau-window", StateKind::Value)?;
        let seen = backend.register(
            StateDescriptor::new("device-seen", StateKind::Value)
                .with_fixed_lengths(4, 8)
                .with_ttl(TtlConfig::new(cfg.seen_ttl_ms)),
        )?;
        let pv_timers = TimerService::new(&backend, "pv-uv")?;
        let dedup_timers = TimerService::new(&backend, "minute-dedup")?;
        let dau_timers = TimerService::new(&backend, "dau")?;
        Ok(Job {
            backend,
            clock,
            next_checkpoint: progress.next_checkpoint,
            cfg,
            uv_devices,
            pv_minute,
            pv_window,
            minute_devices,
            seen,
            dau_window,
            pv_timers,
            dedup_timers,
            dau_timers,
            max_ts: progress.max_ts,
            watermark: progress.watermark,
            fired_through: progress.fired_through,
            stats: JobStats::default(),
        })
    }

    /// Where the job is (to record with a checkpoint).
    pub fn progress(&self) -> JobProgress {
        JobProgress {
            max_ts: self.max_ts,
            watermark: self.watermark,
            fired_through: self.fired_through,
            next_checkpoint: self.next_checkpoint,
        }
    }

    /// True if this instance owns `key`'s key group.
    fn owns(&self, key: &[u8]) -> bool {
        let r = self.backend.key_group_range();
        (r.start..=r.end).contains(&self.backend.key_group_of(key))
    }

    /// The database.
    pub fn db(&self) -> &Db {
        self.backend.db()
    }

    /// What the job has done so far.
    pub fn stats(&self) -> &JobStats {
        &self.stats
    }

    /// The current watermark.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Processes one event, then advances the watermark and fires what it passes; results
    /// go to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut dyn FnMut(Row)) -> Result<()> {
        self.stats.events += 1;
        if minute_timer(ev.ts) <= self.watermark {
            self.stats.late_dropped += 1;
        } else {
            if self.owns(&ev.page.to_be_bytes()) {
                self.page_view(ev)?;
            }
            if self.owns(&ev.channel.to_be_bytes()) {
                self.collect_device(ev)?;
            }
        }
        self.max_ts = self.max_ts.max(ev.ts);
        let wm = self
            .max_ts
            .saturating_sub(self.cfg.watermark_delay_ms)
            .saturating_sub(1);
        self.advance(wm, out)
    }

    /// Ends the input: the watermark moves to the end of time, every window fires, and a
    /// final checkpoint is taken.
    pub fn finish(&mut self, out: &mut dyn FnMut(Row)) -> Result<JobStats> {
        self.advance(u64::MAX, out)?;
        self.db().flush()?;
        self.stats.checkpoints += 1;
        Ok(self.stats.clone())
    }

    fn timer(&self, timestamp: u64, key: &[u8], ns: &[u8]) -> Timer {
        Timer {
            timestamp,
            key_group: self.backend.key_group_of(key),
            key: key.to_vec(),
            namespace: ns.to_vec(),
        }
    }

    /// PV/UV: counts the view in its minute and schedules the (page, day) window.
    fn page_view(&mut self, ev: &Event) -> Result<()> {
        let b = &self.backend;
        let page = ev.page.to_be_bytes();
        let day = day_of(ev.ts).to_be_bytes();
        let minute = minute_of(ev.ts);
        let device = ev.device.to_be_bytes();
        let first = b.map_get(&self.uv_devices, &page, &day, &device)?;
        let first = first.map(|v| ns_u32(&v)).transpose()?;
        let new_device = match first {
            None => true,
            Some(m) if m > minute => {
                // Seen first in a later minute that has not fired yet: move the count.
                b.add(&self.pv_minute, &page, &m.to_be_bytes(), &pair_bytes(0, -1))?;
                true
            }
            Some(_) => false,
        };
        if new_device {
            b.map_put(
                &self.uv_devices,
                &page,
                &day,
                &device,
                &minute.to_be_bytes(),
            )?;
        }
        let delta = pair_bytes(1, i64::from(new_device));
        b.add(&self.pv_minute, &page, &minute.to_be_bytes(), &delta)?;

        let fire_at = minute_timer(ev.ts);
        let window = b.value_get(&self.pv_window, &page, &day)?;
        let window = window.map(|v| u64s::<3>("pv window", &v)).transpose()?;
        let scheduled = match window {
            Some([_, _, next]) if next <= fire_at => return Ok(()),
            Some([pv, uv, next]) => {
                // An out-of-order view in an earlier minute: start the walk there.
                self.pv_timers
                    .delete(EVENT_TIME, &self.timer(next, &page, &day))?;
                [pv, uv, fire_at]
            }
            None => [0, 0, fire_at],
        };
        self.pv_timers
            .register(EVENT_TIME, &self.timer(fire_at, &page, &day))?;
        b.value_update(&self.pv_window, &page, &day, &u64s_bytes(&scheduled))
    }

    /// DAU step 1: remembers the device in its (channel, minute) set.
    fn collect_device(&mut self, ev: &Event) -> Result<()> {
        let channel = ev.channel.to_be_bytes();
        let minute = minute_of(ev.ts).to_be_bytes();
        let device = ev.device.to_be_bytes();
        self.backend
            .map_put(&self.minute_devices, &channel, &minute, &device, b"")?;
        self.dedup_timers.register(
            EVENT_TIME,
            &self.timer(minute_timer(ev.ts), &channel, &minute),
        )
    }

    /// Moves the watermark to `wm` and fires every timer it passes, minute by minute:
    /// minute dedup, then DAU, then PV/UV for one minute before the next.
    fn advance(&mut self, wm: u64, out: &mut dyn FnMut(Row)) -> Result<()> {
        if wm <= self.watermark {
            return Ok(());
        }
        self.watermark = wm;
        // Every timer is a minute end minus one; nothing new is due unless the watermark
        // passed another minute end.
        if last_timer_through(wm) <= self.fired_through {
            return Ok(());
        }
        loop {
            let mut next = None;
            for q in [&self.dedup_timers, &self.dau_timers, &self.pv_timers] {
                if let Some(t) = q.next_timestamp(EVENT_TIME)? {
                    next = Some(next.map_or(t, |n: u64| n.min(t)));
                }
            }
            let Some(t) = next.filter(|&t| t <= wm) else {
                break;
            };
            self.clock.advance_to(t + 1);
            self.fire_dedup(t)?;
            self.fire_dau(t, out)?;
            self.fire_pv(t, out)?;
            self.fired_through = t;
            if let Some(every) = self.cfg.checkpoint_every_ms {
                let due = *self.next_checkpoint.get_or_insert(t + every);
                if t >= due {
                    self.db().flush()?;
                    self.stats.checkpoints += 1;
                    self.next_checkpoint = Some(t + every);
                }
            }
        }
        self.fired_through = self.fired_through.max(last_timer_through(wm));
        Ok(())
    }

    fn poll(&mut self, which: fn(&Job) -> &TimerService, t: u64) -> Result<Vec<Timer>> {
        let mut due = Vec::new();
        which(self).poll(EVENT_TIME, t, &mut |timer| {
            due.push(timer);
            Ok(())
        })?;
        self.stats.timers_fired += due.len() as u64;
        Ok(due)
    }

    /// DAU steps 1 and 2: each (channel, minute) set closes; its devices are deduplicated
    /// by day.
    fn fire_dedup(&mut self, t: u64) -> Result<()> {
        for timer in self.poll(|j| &j.dedup_timers, t)? {
            let b = &self.backend;
            let devices = b.map_keys(&self.minute_devices, &timer.key, &timer.namespace)?;
            b.clear(&self.minute_devices, &timer.key, &timer.namespace)?;
            self.day_dedup(t, &timer.key, &devices)?;
        }
        Ok(())
    }

    fn day_dedup(&mut self, t: u64, channel: &[u8], devices: &[Vec<u8>]) -> Result<()> {
        let b = &self.backend;
        let today = day_of(t);
        // Keyed by channel (so a channel's devices live with it), namespace device.
        let lookups: Vec<(&[u8], &[u8])> =
            devices.iter().map(|d| (channel, d.as_slice())).collect();
        let seen = b.value_multi_get(&self.seen, &lookups)?;
        let (mut new, mut returning) = (0u64, 0u64);
        let mut updates = Vec::new();
        for (device, seen) in devices.iter().zip(seen) {
            let first_day = match seen {
                None => {
                    new += 1;
                    today
                }
                Some(v) => {
                    let [first, last] = u64s::<2>("device seen", &v)?;
                    if last == u64::from(today) {
                        continue;
                    }
                    returning += 1;
                    first as u32
                }
            };
            updates.push((device, u64s_bytes(&[first_day.into(), today.into()])));
        }
        if updates.is_empty() {
            return Ok(());
        }
        let items: Vec<(&[u8], &[u8], &[u8])> = updates
            .iter()
            .map(|(d, v)| (channel, d.as_slice(), v.as_slice()))
            .collect();
        b.value_multi_update(&self.seen, &items)?;
        let day = today.to_be_bytes();
        let counts = b.value_get(&self.dau_window, channel, &day)?;
        let [dau, n, r] = match counts {
            Some(v) => u64s::<3>("dau window", &v)?,
            None => {
                // The day's first active device on this channel: emit from this minute on.
                self.dau_timers
                    .register(EVENT_TIME, &self.timer(t, channel, &day))?;
                [0; 3]
            }
        };
        let next = [dau + new + returning, n + new, r + returning];
        b.value_update(&self.dau_window, channel, &day, &u64s_bytes(&next))
    }

    fn fire_dau(&mut self, t: u64, out: &mut dyn FnMut(Row)) -> Result<()> {
        for timer in self.poll(|j| &j.dau_timers, t)? {
            let b = &self.backend;
            let day = ns_u32(&timer.namespace)?;
            let counts = b
                .value_get(&self.dau_window, &timer.key, &timer.namespace)?
                .ok_or_else(|| Error::corruption("demo job", "a DAU timer without its window"))?;
            let [dau, new, returning] = u64s::<3>("dau window", &counts)?;
            out(Row::Dau(DauRow {
                channel: ns_u32(&timer.key)?,
                window_start: u64::from(day) * DAY_MS,
                window_end: t + 1,
                dau,
                new,
                returning,
            }));
            self.stats.dau_rows += 1;
            if t + 1 < u64::from(day + 1) * DAY_MS {
                self.dau_timers.register(
                    EVENT_TIME,
                    &self.timer(t + MINUTE_MS, &timer.key, &timer.namespace),
                )?;
            } else {
                b.clear(&self.dau_window, &timer.key, &timer.namespace)?;
            }
        }
        Ok(())
    }

    fn fire_pv(&mut self, t: u64, out: &mut dyn FnMut(Row)) -> Result<()> {
        let minute = minute_of(t).to_be_bytes();
        for timer in self.poll(|j| &j.pv_timers, t)? {
            let b = &self.backend;
            let (page, day_ns) = (&timer.key, &timer.namespace);
            let day = ns_u32(day_ns)?;
            let (dpv, duv) = b
                .get(&self.pv_minute, page, &minute)?
                .map_or((0, 0), |v| pair(&v));
            b.clear(&self.pv_minute, page, &minute)?;
            let window = b
                .value_get(&self.pv_window, page, day_ns)?
                .ok_or_else(|| Error::corruption("demo job", "a PV timer without its window"))?;
            let [pv, uv, _] = u64s::<3>("pv window", &window)?;
            let (pv, uv) = (pv.wrapping_add_signed(dpv), uv.wrapping_add_signed(duv));
            out(Row::Pv(PvRow {
                page: ns_u32(page)?,
                window_start: u64::from(day) * DAY_MS,
                window_end: t + 1,
                pv,
                uv,
            }));
            self.stats.pv_rows += 1;
            if t + 1 < u64::from(day + 1) * DAY_MS {
                let next = t + MINUTE_MS;
                self.pv_timers
                    .register(EVENT_TIME, &self.timer(next, page, day_ns))?;
                b.value_update(&self.pv_window, page, day_ns, &u64s_bytes(&[pv, uv, next]))?;
            } else {
                b.clear(&self.pv_window, page, day_ns)?;
                b.clear(&self.uv_devices, page, day_ns)?;
            }
        }
        Ok(())
    }
}
