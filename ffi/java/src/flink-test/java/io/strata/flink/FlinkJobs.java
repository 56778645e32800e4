package io.strata.flink;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichFlatMapFunction;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * Real Flink jobs on a local MiniCluster, with the state backend chosen by name ({@code
 * strata}, {@code rocksdb}, {@code forst}, {@code hashmap}): a keyed running count (value
 * state), tumbling and sliding windows (aggregating and list state), session windows
 * (merging namespaces), a dedup with TTL map state, and event- and processing-time timers.
 * Each job's output goes into an order-independent checksum kept in checkpointed operator
 * state, so exactly-once holds across failures; it is compared with the same computation
 * done without Flink. Modes: {@code plain}, {@code failure} (every keyed subtask throws once
 * after a completed checkpoint; restart from it) and {@code rescale} (fail without restart
 * at parallelism 2, then restore the retained checkpoint at 3 and at 1).
 *
 * <p>Usage: {@code FlinkJobs <backend> <mode> [job...]}; prints cargo-style result lines.
 */
public final class FlinkJobs {
  static final int N = Integer.getInteger("flink.records", 200_000);
  static final int KEYS = Integer.getInteger("flink.keys", 500);
  /** Keyed functions opened (their state restored) in this JVM, and when the last did. */
  static final java.util.concurrent.atomic.AtomicInteger OPENED = new java.util.concurrent.atomic.AtomicInteger();
  static volatile long lastOpenNanos;

  static void opened() {
    lastOpenNanos = System.nanoTime();
    OPENED.incrementAndGet();
  }

  /** Event i: (key, event time, value). Event time bursts with gaps, for sessions. */
  static Tuple3<Long, Long, Long> event(long i) {
    long key = (i * 7919) % KEYS;
    long ts = i + (i / 20_000) * 100_000;
    return Tuple3.of(key, ts, i % 97);
  }

  static long mix(long... xs) {
    long h = 0x9E3779B97F4A7C15L;
    for (long x : xs) {
      h ^= x;
      h *= 0xBF58476D1CE4E5B9L;
      h ^= h >>> 31;
    }
    return h;
  }

  interface Job {
    DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in);

    /** The checksum of the output, computed without Flink. */
    long expected();
  }

  static final Map<String, Job> JOBS = new TreeMap<>();

  static {
    JOBS.put("count", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        return in.process(new RunningCount()).name("count");
      }

      public long expected() {
        Map<Long, Long> counts = new HashMap<>();
        long sum = 0;
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          long c = counts.merge(e.f0, 1L, Long::sum);
          sum += mix(e.f0, c);
        }
        return sum;
      }
    });
    JOBS.put("windows", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        DataStream<Long> tumbling =
            in.window(TumblingEventTimeWindows.of(Duration.ofMillis(5_000)))
                .aggregate(new SumAggregate(), new EmitWindow())
                .name("tumbling");
        DataStream<Long> sliding =
            in.window(SlidingEventTimeWindows.of(Duration.ofMillis(10_000), Duration.ofMillis(5_000)))
                .process(new ListWindow())
                .name("sliding");
        return tumbling.union(sliding);
      }

      public long expected() {
        Map<List<Long>, Long> tumbling = new HashMap<>();
        Map<List<Long>, long[]> sliding = new HashMap<>();
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          long start = e.f1 - Math.floorMod(e.f1, 5_000L);
          tumbling.merge(List.of(e.f0, start + 5_000), e.f2, Long::sum);
          for (long s = start; s > e.f1 - 10_000; s -= 5_000) {
            long[] acc = sliding.computeIfAbsent(List.of(e.f0, s + 10_000), k -> new long[2]);
            acc[0]++;
            acc[1] += e.f2;
          }
        }
        long sum = 0;
        for (Map.Entry<List<Long>, Long> w : tumbling.entrySet()) {
          sum += mix(1, w.getKey().get(0), w.getKey().get(1), w.getValue());
        }
        for (Map.Entry<List<Long>, long[]> w : sliding.entrySet()) {
          sum += mix(2, w.getKey().get(0), w.getKey().get(1), w.getValue()[0], w.getValue()[1]);
        }
        return sum;
      }
    });
    // Nexmark Q5-style "hot items": bids per auction in sliding windows, then per window the
    // auction with the most bids (ties: the smallest auction id). Event i is a bid on
    // auction f0 at time f1.
    JOBS.put("hot-items", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        return in.window(SlidingEventTimeWindows.of(Duration.ofMillis(10_000), Duration.ofMillis(2_000)))
            .aggregate(new CountAggregate(), new AuctionCount())
            .name("bids-per-auction")
            .keyBy(t -> t.f0, Types.LONG)
            .process(new HottestPerWindow())
            .name("hottest");
      }

      public long expected() {
        Map<List<Long>, Long> counts = new HashMap<>();
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          long last = e.f1 - Math.floorMod(e.f1, 2_000L);
          for (long s = last; s > e.f1 - 10_000; s -= 2_000) {
            counts.merge(List.of(s + 10_000, e.f0), 1L, Long::sum);
          }
        }
        Map<Long, long[]> best = new HashMap<>();
        for (Map.Entry<List<Long>, Long> c : counts.entrySet()) {
          long end = c.getKey().get(0);
          long auction = c.getKey().get(1);
          long[] b = best.computeIfAbsent(end, k -> new long[] {Long.MAX_VALUE, -1});
          if (c.getValue() > b[1] || (c.getValue() == b[1] && auction < b[0])) {
            b[0] = auction;
            b[1] = c.getValue();
          }
        }
        long sum = 0;
        for (Map.Entry<Long, long[]> b : best.entrySet()) {
          sum += mix(5, b.getKey(), b.getValue()[0], b.getValue()[1]);
        }
        return sum;
      }
    });
    JOBS.put("sessions", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        return in.window(EventTimeSessionWindows.withGap(Duration.ofMillis(10_000)))
            .aggregate(new SumAggregate(), new EmitWindow())
            .name("sessions");
      }

      public long expected() {
        // Per key: events sorted by time; a gap of 10 s or more starts a new session.
        Map<Long, List<long[]>> byKey = new HashMap<>();
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          byKey.computeIfAbsent(e.f0, k -> new ArrayList<>()).add(new long[] {e.f1, e.f2});
        }
        long sum = 0;
        for (Map.Entry<Long, List<long[]>> k : byKey.entrySet()) {
          List<long[]> ev = k.getValue();
          ev.sort(Comparator.comparingLong(a -> a[0]));
          long end = Long.MIN_VALUE;
          long acc = 0;
          for (long[] e : ev) {
            if (end != Long.MIN_VALUE && e[0] >= end) {
              sum += mix(1, k.getKey(), end, acc);
              acc = 0;
            }
            acc += e[1];
            end = Math.max(end, e[0] + 10_000);
          }
          sum += mix(1, k.getKey(), end, acc);
        }
        return sum;
      }
    });
    JOBS.put("dedup", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        return in.process(new Dedup()).name("dedup");
      }

      public long expected() {
        Set<List<Long>> seen = new HashSet<>();
        long sum = 0;
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          if (seen.add(List.of(e.f0, e.f2))) {
            sum += mix(e.f0, e.f2);
          }
        }
        return sum;
      }
    });
    JOBS.put("timers", new Job() {
      public DataStream<Long> build(KeyedStream<Tuple3<Long, Long, Long>, Long> in) {
        return in.process(new Timers()).name("timers");
      }

      public long expected() {
        // One event-time timer per (key, 1000 ms bucket end): fired once each.
        Set<List<Long>> timers = new HashSet<>();
        for (long i = 0; i < N; i++) {
          Tuple3<Long, Long, Long> e = event(i);
          timers.add(List.of(e.f0, e.f1 - Math.floorMod(e.f1, 1_000L) + 999));
        }
        long sum = 0;
        for (List<Long> t : timers) {
          sum += mix(3, t.get(0), t.get(1));
        }
        return sum;
      }
    });
  }

  // ---- the jobs' functions --------------------------------------------------------------

  static final class RunningCount extends KeyedProcessFunction<Long, Tuple3<Long, Long, Long>, Long> {
    private transient ValueState<Long> count;

    @Override
    public void open(OpenContext ctx) {
      count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
      opened();
    }

    @Override
    public void processElement(Tuple3<Long, Long, Long> e, Context ctx, Collector<Long> out)
        throws Exception {
      Long c = count.value();
      long next = c == null ? 1 : c + 1;
      count.update(next);
      out.collect(mix(e.f0, next));
    }
  }

  static final class SumAggregate implements AggregateFunction<Tuple3<Long, Long, Long>, Long, Long> {
    public Long createAccumulator() {
      return 0L;
    }

    public Long add(Tuple3<Long, Long, Long> e, Long acc) {
      return acc + e.f2;
    }

    public Long getResult(Long acc) {
      return acc;
    }

    public Long merge(Long a, Long b) {
      return a + b;
    }
  }

  static final class CountAggregate implements AggregateFunction<Tuple3<Long, Long, Long>, Long, Long> {
    public Long createAccumulator() {
      return 0L;
    }

    public Long add(Tuple3<Long, Long, Long> e, Long acc) {
      return acc + 1;
    }

    public Long getResult(Long acc) {
      return acc;
    }

    public Long merge(Long a, Long b) {
      return a + b;
    }
  }

  /** (window end, auction, bids). */
  static final class AuctionCount
      extends ProcessWindowFunction<Long, Tuple3<Long, Long, Long>, Long, TimeWindow> {
    @Override
    public void open(OpenContext ctx) {
      opened();
    }

    @Override
    public void process(Long auction, Context ctx, Iterable<Long> counts, Collector<Tuple3<Long, Long, Long>> out) {
      out.collect(Tuple3.of(ctx.window().getEnd(), auction, counts.iterator().next()));
    }
  }

  /** Keyed by window end: keeps the hottest auction, emits it when the window's results are in. */
  static final class HottestPerWindow
      extends KeyedProcessFunction<Long, Tuple3<Long, Long, Long>, Long> {
    private transient ValueState<Tuple3<Long, Long, Long>> best;

    @Override
    public void open(OpenContext ctx) {
      best = getRuntimeContext().getState(
          new ValueStateDescriptor<>("best", Types.TUPLE(Types.LONG, Types.LONG, Types.LONG)));
      opened();
    }

    @Override
    public void processElement(Tuple3<Long, Long, Long> c, Context ctx, Collector<Long> out) throws Exception {
      Tuple3<Long, Long, Long> b = best.value();
      if (b == null) {
        // The window's results carry its last timestamp; they all arrive before the
        // watermark passes it.
        ctx.timerService().registerEventTimeTimer(c.f0 - 1);
      }
      if (b == null || c.f2 > b.f2 || (c.f2.equals(b.f2) && c.f1 < b.f1)) {
        best.update(Tuple3.of(c.f0, c.f1, c.f2));
      }
    }

    @Override
    public void onTimer(long ts, OnTimerContext ctx, Collector<Long> out) throws Exception {
      Tuple3<Long, Long, Long> b = best.value();
      out.collect(mix(5, b.f0, b.f1, b.f2));
      best.clear();
    }
  }

  static final class EmitWindow extends ProcessWindowFunction<Long, Long, Long, TimeWindow> {
    @Override
    public void open(OpenContext ctx) {
      opened();
    }

    @Override
    public void process(Long key, Context ctx, Iterable<Long> sums, Collector<Long> out) {
      out.collect(mix(1, key, ctx.window().getEnd(), sums.iterator().next()));
    }
  }

  static final class ListWindow
      extends ProcessWindowFunction<Tuple3<Long, Long, Long>, Long, Long, TimeWindow> {
    @Override
    public void open(OpenContext ctx) {
      opened();
    }

    @Override
    public void process(
        Long key, Context ctx, Iterable<Tuple3<Long, Long, Long>> events, Collector<Long> out) {
      long n = 0;
      long sum = 0;
      for (Tuple3<Long, Long, Long> e : events) {
        n++;
        sum += e.f2;
      }
      out.collect(mix(2, key, ctx.window().getEnd(), n, sum));
    }
  }

  static final class Dedup extends KeyedProcessFunction<Long, Tuple3<Long, Long, Long>, Long> {
    private transient MapState<Long, Boolean> seen;

    @Override
    public void open(OpenContext ctx) {
      MapStateDescriptor<Long, Boolean> d = new MapStateDescriptor<>("seen", Types.LONG, Types.BOOLEAN);
      // Long enough never to expire during the test: the output stays exact.
      d.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofHours(1)).build());
      seen = getRuntimeContext().getMapState(d);
      opened();
    }

    @Override
    public void processElement(Tuple3<Long, Long, Long> e, Context ctx, Collector<Long> out)
        throws Exception {
      if (!seen.contains(e.f2)) {
        seen.put(e.f2, true);
        out.collect(mix(e.f0, e.f2));
      }
    }
  }

  static final class Timers extends KeyedProcessFunction<Long, Tuple3<Long, Long, Long>, Long> {
    private transient ValueState<Long> processingFired;

    @Override
    public void open(OpenContext ctx) {
      processingFired = getRuntimeContext().getState(new ValueStateDescriptor<>("pt", Types.LONG));
      opened();
    }

    @Override
    public void processElement(Tuple3<Long, Long, Long> e, Context ctx, Collector<Long> out) {
      ctx.timerService().registerEventTimeTimer(e.f1 - Math.floorMod(e.f1, 1_000L) + 999);
      // A processing-time timer too (its firings depend on wall time, so they are not in
      // the checksum; the timer service must accept and fire them).
      ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + 50);
    }

    @Override
    public void onTimer(long ts, OnTimerContext ctx, Collector<Long> out) throws Exception {
      if (ctx.timeDomain() == org.apache.flink.streaming.api.TimeDomain.EVENT_TIME) {
        out.collect(mix(3, ctx.getCurrentKey(), ts));
      } else {
        Long n = processingFired.value();
        processingFired.update(n == null ? 1 : n + 1);
      }
    }
  }

  /** Throws once per subtask (first attempt) after a checkpoint completed and enough records. */
  static final class FailOnce extends RichMapFunction<Tuple3<Long, Long, Long>, Tuple3<Long, Long, Long>>
      implements CheckpointListener {
    private final boolean enabled;
    private transient long seen;
    private transient volatile boolean checkpointed;

    FailOnce(boolean enabled) {
      this.enabled = enabled;
    }

    @Override
    public Tuple3<Long, Long, Long> map(Tuple3<Long, Long, Long> e) {
      if (enabled
          && getRuntimeContext().getTaskInfo().getAttemptNumber() == 0
          && ++seen > N / 4
          && checkpointed) {
        throw new IllegalStateException("injected failure after " + seen + " records");
      }
      return e;
    }

    @Override
    public void notifyCheckpointComplete(long id) {
      checkpointed = true;
    }
  }

  /** Sums the output into checkpointed operator state; reports it as an accumulator. */
  static final class Checksum extends RichFlatMapFunction<Long, Void> implements CheckpointedFunction {
    private transient long sum;
    private transient ListState<Long> state;

    @Override
    public void flatMap(Long v, Collector<Void> out) {
      sum += v;
    }

    @Override
    public void snapshotState(FunctionSnapshotContext ctx) throws Exception {
      state.update(List.of(sum));
    }

    @Override
    public void initializeState(FunctionInitializationContext ctx) throws Exception {
      state = ctx.getOperatorStateStore().getListState(new ListStateDescriptor<>("checksum", Types.LONG));
      // One partial sum per former subtask, redistributed on rescale: the total is kept.
      for (Long s : state.get()) {
        sum += s;
      }
    }

    @Override
    public void close() {
      LongCounter s = new LongCounter();
      s.add(sum);
      getRuntimeContext().addAccumulator("checksum", s);
    }
  }

  // ---- running ---------------------------------------------------------------------------

  static Configuration config(String backend, Path dir, int parallelism) {
    Configuration c = new Configuration();
    c.setString("state.backend.type", backend.equals("strata") ? StrataStateBackendFactory.class.getName() : backend);
    c.setString("execution.checkpointing.interval", System.getProperty("flink.checkpoint.interval", "150ms"));
    c.setString("execution.checkpointing.dir", dir.resolve("checkpoints").toUri().toString());
    c.setString("execution.checkpointing.incremental", "true");
    c.setString("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION");
    c.setString("execution.checkpointing.num-retained", "2");
    c.setString("taskmanager.memory.managed.size", "256m");
    c.setString("taskmanager.numberOfTaskSlots", "4");
    c.setString("rest.bind-port", "0");
    c.setString("restart-strategy.type", "fixed-delay");
    c.setString("restart-strategy.fixed-delay.attempts", "3");
    c.setString("restart-strategy.fixed-delay.delay", "100ms");
    c.setString("state.backend.forst.local-dir", dir.resolve("forst").toString());
    c.setString("state.backend.strata.local-dir", dir.resolve("strata").toString());
    c.setString("io.tmp.dirs", dir.resolve("tmp").toString());
    c.setString("parallelism.default", Integer.toString(parallelism));
    return c;
  }

  static long run(String backend, String job, Path dir, int parallelism, boolean fail, String restoreFrom, boolean noRestart)
      throws Exception {
    Configuration c = config(backend, dir, parallelism);
    if (restoreFrom != null) {
      c.setString("execution.state-recovery.path", restoreFrom);
    }
    if (noRestart) {
      c.setString("restart-strategy.type", "none");
    }
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
    env.setParallelism(parallelism);
    DataStream<Tuple3<Long, Long, Long>> events =
        events(
                env,
                N,
                RateLimiterStrategy.perSecond(restoreFrom == null && (fail || noRestart) ? 100_000 : 10_000_000))
            .setParallelism(1)
            .map(new FailOnce(fail))
            .setParallelism(1)
            .name("fail-once");
    JOBS.get(job)
        .build(events.keyBy(e -> e.f0, Types.LONG))
        .flatMap(new Checksum())
        .name("checksum")
        .sinkTo(new DiscardingSink<>());
    JobExecutionResult r = env.execute(job + " on " + backend);
    Long sum = r.getAccumulatorResult("checksum");
    return sum == null ? 0 : sum;
  }

  /** {@code count} events (event time from {@link #event}, monotonous watermarks). */
  static org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator<Tuple3<Long, Long, Long>> events(
      StreamExecutionEnvironment env, long count, RateLimiterStrategy<?> rate) {
    return env.fromSource(
        new DataGeneratorSource<>(FlinkJobs::event, count, rate, Types.TUPLE(Types.LONG, Types.LONG, Types.LONG)),
        WatermarkStrategy.<Tuple3<Long, Long, Long>>forMonotonousTimestamps().withTimestampAssigner((e, t) -> e.f1),
        "events");
  }

  /** The newest retained checkpoint under {@code dir}/checkpoints. */
  static String latestCheckpoint(Path dir) throws Exception {
    try (Stream<Path> s = Files.walk(dir.resolve("checkpoints"))) {
      Optional<Path> p =
          s.filter(x -> x.getFileName().toString().equals("_metadata"))
              .map(Path::getParent)
              .max(Comparator.comparingLong(x -> Long.parseLong(x.getFileName().toString().substring(4))));
      return p.orElseThrow(() -> new IllegalStateException("no retained checkpoint in " + dir)).toUri().toString();
    }
  }

  public static void main(String[] args) throws Exception {
    String backend = args[0];
    String mode = args[1];
    List<String> jobs = new ArrayList<>();
    for (int i = 2; i < args.length; i++) {
      jobs.add(args[i]);
    }
    if (jobs.isEmpty()) {
      jobs.addAll(JOBS.keySet());
    }
    int passed = 0;
    int failed = 0;
    for (String job : jobs) {
      Path dir = Files.createTempDirectory("strata-flink-" + job);
      long want = JOBS.get(job).expected();
      List<String> problems = new ArrayList<>();
      long t0 = System.nanoTime();
      try {
        switch (mode) {
          case "plain" -> check(problems, "p=2", want, run(backend, job, dir, 2, false, null, false));
          case "failure" -> check(problems, "p=2 with a failure", want, run(backend, job, dir, 2, true, null, false));
          case "rescale" -> {
            try {
              run(backend, job, dir, 2, true, null, true);
              problems.add("the first run did not fail");
            } catch (Exception expected) {
              // The injected failure stops the job; its last checkpoint is retained.
            }
            String chk = latestCheckpoint(dir);
            Path d3 = Files.createTempDirectory("strata-flink-" + job + "-p3");
            Path d1 = Files.createTempDirectory("strata-flink-" + job + "-p1");
            check(problems, "2 -> 3", want, run(backend, job, d3, 3, false, chk, false));
            check(problems, "2 -> 1", want, run(backend, job, d1, 1, false, chk, false));
            deleteTree(d3);
            deleteTree(d1);
          }
          default -> throw new IllegalArgumentException("mode " + mode);
        }
      } catch (Exception e) {
        e.printStackTrace(System.out);
        problems.add("job failed: " + e);
      }
      deleteTree(dir);
      double secs = (System.nanoTime() - t0) / 1e9;
      if (problems.isEmpty()) {
        passed++;
        System.out.printf("flink %s %s %s ... ok (%.1f s)%n", backend, mode, job, secs);
      } else {
        failed++;
        System.out.printf("flink %s %s %s ... FAILED: %s%n", backend, mode, job, problems);
      }
    }
    System.out.printf(
        "test result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (Flink jobs on %s, %s)%n",
        failed == 0 ? "ok" : "FAILED", passed, failed, backend, mode);
    System.exit(failed == 0 ? 0 : 1);
  }

  static void check(List<String> problems, String what, long want, long got) {
    if (want != got) {
      problems.add(what + ": checksum " + Long.toHexString(got) + ", expected " + Long.toHexString(want));
    }
  }

  static void deleteTree(Path p) throws Exception {
    StrataKeyedStateBackend.deleteTree(p);
  }
}
