package io.strata.flink;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.functions.RichFlatMapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.checkpoint.CheckpointStatsSnapshot;
import org.apache.flink.runtime.checkpoint.CompletedCheckpointStatsSummarySnapshot;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.util.Collector;

/**
 * One benchmark run of one of {@link FlinkJobs}' jobs on one state backend, in a MiniCluster
 * of one TaskManager with one slot and 256 MiB managed memory, parallelism 1:
 *
 * <ol>
 *   <li>Throughput: {@code flink.records} events (keys {@code flink.keys}) as fast as the
 *       job takes them, checkpoints every {@code flink.checkpoint.interval}; records/s is
 *       measured where the events enter the job (backpressure makes that the keyed
 *       operator's rate). After the last event, one more checkpoint completes (the full
 *       state) and the job stops; the checkpoint is retained.
 *   <li>Restore: the same job restored from that checkpoint, until every keyed function is
 *       open (its state restored), then cancelled. Restore time is this run's
 *       submit-to-open time minus that of the same job starting empty right after it.
 * </ol>
 *
 * Prints one line {@code BENCH {json}}; {@code run-flink-bench.sh} runs each backend and job
 * in its own JVM (so peak RSS is its own) and makes the table in BENCHMARKS.md.
 */
public final class FlinkBench {
  /** Keyed operators per job (each calls {@link FlinkJobs#opened}). */
  static int keyedOperators(String job) {
    return job.equals("windows") || job.equals("hot-items") ? 2 : 1;
  }

  /** Set when the checkpoint after the last event completed: the run stops. */
  static volatile boolean stop;
  /** The restore run: every event is dropped. */
  static volatile boolean restoring;
  static volatile long firstNanos;
  static volatile long lastNanos;

  /** Passes the first N events, then throttles and drops; fails once the full state is checkpointed. */
  static final class Meter extends RichFlatMapFunction<Tuple3<Long, Long, Long>, Tuple3<Long, Long, Long>>
      implements CheckpointedFunction, CheckpointListener {
    private transient long seen;
    private transient long stopCheckpoint;

    @Override
    public void flatMap(Tuple3<Long, Long, Long> e, Collector<Tuple3<Long, Long, Long>> out)
        throws Exception {
      seen++;
      if (!restoring && seen <= FlinkJobs.N) {
        if (seen == 1) {
          firstNanos = System.nanoTime();
        }
        out.collect(e);
        if (seen == FlinkJobs.N) {
          lastNanos = System.nanoTime();
        }
        return;
      }
      if (stop && !restoring) {
        throw new IllegalStateException("benchmark run complete");
      }
      // Past the last event: keep the source from spinning while the last checkpoint runs.
      Thread.sleep(1);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext ctx) {
      if (seen >= FlinkJobs.N && stopCheckpoint < 0) {
        stopCheckpoint = ctx.getCheckpointId();
      }
    }

    @Override
    public void initializeState(FunctionInitializationContext ctx) {
      stopCheckpoint = -1;
    }

    @Override
    public void notifyCheckpointComplete(long id) {
      if (stopCheckpoint >= 0 && id >= stopCheckpoint) {
        stop = true;
      }
    }
  }

  static StreamGraph job(String backend, String job, Path dir, String restoreFrom) {
    Configuration c = FlinkJobs.config(backend, dir, 1);
    c.setString("restart-strategy.type", "none");
    if (restoreFrom != null) {
      c.setString("execution.state-recovery.path", restoreFrom);
    }
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
    env.setParallelism(1);
    env.getConfig().enableObjectReuse();
    DataStream<Tuple3<Long, Long, Long>> events =
        FlinkJobs.events(env, Long.MAX_VALUE, RateLimiterStrategy.noOp())
            .flatMap(new Meter())
            .returns(Types.TUPLE(Types.LONG, Types.LONG, Types.LONG))
            .name("meter");
    FlinkJobs.JOBS.get(job).build(events.keyBy(e -> e.f0, Types.LONG)).sinkTo(new DiscardingSink<>());
    return env.getStreamGraph();
  }

  /** Submits, and returns the nanos from submission until every keyed function is open. */
  static long submitAndAwaitOpen(MiniCluster mc, StreamGraph g, String job, JobID[] id) throws Exception {
    FlinkJobs.OPENED.set(0);
    long t0 = System.nanoTime();
    id[0] = mc.submitJob(g.getJobGraph()).get().getJobID();
    long deadline = t0 + TimeUnit.MINUTES.toNanos(10);
    // A benchmark driver, not a test: poll the open count.
    while (FlinkJobs.OPENED.get() < keyedOperators(job)) {
      if (System.nanoTime() > deadline || mc.getJobStatus(id[0]).get().isGloballyTerminalState()) {
        throw new IllegalStateException("the keyed operators of " + job + " did not open");
      }
      Thread.sleep(1);
    }
    return FlinkJobs.lastOpenNanos - t0;
  }

  public static void main(String[] args) throws Exception {
    String backend = args[0];
    String job = args[1];
    Path dir = Files.createTempDirectory("strata-flink-bench-" + job);
    Configuration c = FlinkJobs.config(backend, dir, 1);
    c.setString("taskmanager.numberOfTaskSlots", "1");
    MiniCluster mc =
        new MiniCluster(
            new MiniClusterConfiguration.Builder()
                .setConfiguration(c)
                .setNumTaskManagers(1)
                .setNumSlotsPerTaskManager(1)
                .build());
    mc.start();
    try {
      JobID[] id = new JobID[1];
      submitAndAwaitOpen(mc, job(backend, job, dir, null), job, id);
      mc.requestJobResult(id[0]).get();
      if (lastNanos == 0) {
        throw new IllegalStateException("the job stopped before its last event");
      }
      double secs = (lastNanos - firstNanos) / 1e9;
      CheckpointStatsSnapshot stats = mc.getArchivedExecutionGraph(id[0]).get().getCheckpointStatsSnapshot();
      CompletedCheckpointStatsSummarySnapshot sum = stats.getSummaryStats();
      long completed = stats.getCounts().getNumberOfCompletedCheckpoints();
      long fullState = stats.getHistory().getLatestCompletedCheckpoint().getStateSize();
      String chk = FlinkJobs.latestCheckpoint(dir);
      restoring = true;
      long startRestored = submitAndAwaitOpen(mc, job(backend, job, dir.resolve("restored"), chk), job, id);
      mc.cancelJob(id[0]).get();
      mc.requestJobResult(id[0]).get();
      // The baseline: the same job starting empty, as warm as the restored start was.
      long startWarm = submitAndAwaitOpen(mc, job(backend, job, dir.resolve("empty"), null), job, id);
      mc.cancelJob(id[0]).get();
      mc.requestJobResult(id[0]).get();
      long restoreMs = Math.max(0, (startRestored - startWarm) / 1_000_000);
      long rssKib = peakRssKib();
      System.out.println(
          "BENCH "
              + String.format(
                  Locale.ROOT,
                  "{\"backend\":\"%s\",\"job\":\"%s\",\"records\":%d,\"keys\":%d,\"records_per_s\":%.0f,"
                      + "\"checkpoints\":%d,\"checkpoint_ms_avg\":%d,\"checkpoint_ms_max\":%d,"
                      + "\"checkpointed_bytes_avg\":%d,\"full_state_bytes\":%d,\"restore_ms\":%d,"
                      + "\"restored_start_ms\":%d,\"empty_start_ms\":%d,\"peak_rss_kib\":%d}",
                  backend, job, FlinkJobs.N, FlinkJobs.KEYS, FlinkJobs.N / secs, completed,
                  sum.getEndToEndDurationStats().getAverage(), sum.getEndToEndDurationStats().getMaximum(),
                  sum.getCheckpointedSize().getAverage(), fullState, restoreMs, startRestored / 1_000_000,
                  startWarm / 1_000_000, rssKib));
    } finally {
      mc.closeAsync().get();
      StrataKeyedStateBackend.deleteTree(dir);
    }
    System.exit(0);
  }

  static long peakRssKib() throws Exception {
    for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (l.startsWith("VmHWM:")) {
        return Long.parseLong(l.replaceAll("[^0-9]", ""));
      }
    }
    return -1;
  }

  private FlinkBench() {}
}
