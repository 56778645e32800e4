package io.strata.flink;

import io.strata.Options;
import io.strata.StrataDb;
import io.strata.Table;
import io.strata.TableOptions;
import io.strata.StrataIterator;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.runtime.state.heap.KeyGroupPartitionedPriorityQueue;
import org.apache.flink.streaming.api.operators.TimerHeapInternalTimer;
import org.apache.flink.streaming.api.operators.TimerSerializer;

/**
 * Model check of {@link StrataTimerSet} against a {@code TreeSet}: random adds, removes and
 * polls with a tiny cache, so the cache runs dry, overflows and refills constantly; every
 * return value (new head, removed head, polled element, size) must match the model. Then the
 * backend's whole timer queue ({@link StrataTimerSet#queue}, one set per key group) with
 * Flink's timers: poll order, each timer stored under its own key group, and a second queue
 * over the same database (a restore) holding exactly the model's timers.
 */
public final class TimerSetModelTest {
  public static void main(String[] args) throws Exception {
    int failures = 0;
    for (int cache : new int[] {1, 2, 3, 8}) {
      try {
        run(cache, Integer.getInteger("ops", 20_000), Integer.getInteger("range", 200), new Random(cache * 31L));
        System.out.println("test timer set, cache " + cache + " ... ok");
      } catch (AssertionError e) {
        failures++;
        System.out.println("test timer set, cache " + cache + " ... FAILED: " + e.getMessage());
      }
    }
    for (int cache : new int[] {2, 128}) {
      try {
        runQueue(cache, Integer.getInteger("ops", 20_000), new Random(cache * 17L));
        System.out.println("test timer queue over key groups, cache " + cache + " ... ok");
      } catch (AssertionError e) {
        failures++;
        System.out.println("test timer queue over key groups, cache " + cache + " ... FAILED: " + e.getMessage());
      }
    }
    System.out.printf(
        "test result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (timer set model)%n",
        failures == 0 ? "ok" : "FAILED", 6 - failures, failures);
    System.exit(failures == 0 ? 0 : 1);
  }

  static void run(int cacheLimit, int ops, int range, Random rnd) throws Exception {
    java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("timer-set-model");
    try (StrataDb db =
            StrataDb.open(dir.toString(), new Options().memoryBudget(2 << 20).keyGroups(0, 9));
        Table t = db.createTable("timers", new TableOptions().keyGroupField(0, 1))) {
      StrataTimerSet<Long> set = new StrataTimerSet<>(db, t, 5, 1, LongSerializer.INSTANCE, cacheLimit);
      TreeSet<Long> model = new TreeSet<>();
      for (int i = 0; i < ops; i++) {
        int op = rnd.nextInt(10);
        long v = rnd.nextInt(range);
        if (op < 5) {
          Long head = model.isEmpty() ? null : model.first();
          boolean added = model.add(v);
          boolean newHead = added && (head == null || v < head);
          eq(newHead, set.add(v), "add " + v + " at op " + i);
        } else if (op < 7) {
          boolean wasHead = !model.isEmpty() && model.first() == v;
          model.remove(v);
          eq(wasHead, set.remove(v), "remove " + v + " at op " + i);
        } else if (op < 9) {
          eq(model.pollFirst(), set.poll(), "poll at op " + i);
        } else {
          eq(model.size(), set.size(), "size at op " + i);
          eq(model.isEmpty() ? null : model.first(), set.peek(), "peek at op " + i);
        }
      }
    } finally {
      StrataKeyedStateBackend.deleteTree(dir);
    }
  }

  /** Key groups 3..9 of 10, as a subtask holds a part of the job's key groups. */
  static void runQueue(int cacheLimit, int ops, Random rnd) throws Exception {
    int total = 10;
    KeyGroupRange range = new KeyGroupRange(3, 9);
    TimerSerializer<Long, VoidNamespace> ser =
        new TimerSerializer<>(LongSerializer.INSTANCE, VoidNamespaceSerializer.INSTANCE);
    java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("timer-queue-model");
    try (StrataDb db =
            StrataDb.open(dir.toString(), new Options().memoryBudget(2 << 20).keyGroups(3, 9));
        Table t = db.createTable("timers", new TableOptions().keyGroupField(0, 1))) {
      KeyGroupPartitionedPriorityQueue<TimerHeapInternalTimer<Long, VoidNamespace>, ?> q =
          StrataTimerSet.queue(db, t, range, total, 1, ser, cacheLimit);
      // (timestamp, key): the queue's order is by timestamp only.
      TreeSet<List<Long>> model = new TreeSet<>(Comparator.<List<Long>>comparingLong(l -> l.get(0)).thenComparingLong(l -> l.get(1)));
      List<Long> keys = new ArrayList<>();
      for (long k = 0; keys.size() < 40; k++) {
        if (range.contains(KeyGroupRangeAssignment.assignToKeyGroup(k, total))) {
          keys.add(k);
        }
      }
      for (int i = 0; i < ops; i++) {
        int op = rnd.nextInt(10);
        long ts = rnd.nextInt(500);
        long key = keys.get(rnd.nextInt(keys.size()));
        TimerHeapInternalTimer<Long, VoidNamespace> timer = new TimerHeapInternalTimer<>(ts, key, VoidNamespace.INSTANCE);
        if (op < 5) {
          model.add(List.of(ts, key));
          q.add(timer);
        } else if (op < 7) {
          model.remove(List.of(ts, key));
          q.remove(timer);
        } else if (op < 9) {
          List<Long> want = model.isEmpty() ? null : model.first();
          TimerHeapInternalTimer<Long, VoidNamespace> got = q.poll();
          eq(want == null ? null : want.get(0), got == null ? null : got.getTimestamp(), "polled timestamp at op " + i);
          if (got != null) {
            eq(true, model.remove(List.of(got.getTimestamp(), got.getKey())), "polled " + got + " is in the model");
          }
        } else {
          eq(model.size(), q.size(), "size at op " + i);
        }
      }
      // Every stored timer sits under its own key group, and nothing else is stored.
      int stored = 0;
      try (StrataIterator it = db.range(t, new byte[0], null)) {
        while (it.next()) {
          byte[] k = it.key();
          DataInputDeserializer in = new DataInputDeserializer(k, 1, k.length - 1);
          TimerHeapInternalTimer<Long, VoidNamespace> timer = ser.deserialize(in);
          eq(KeyGroupRangeAssignment.assignToKeyGroup(timer.getKey(), total), (int) k[0], "key group of stored " + timer);
          eq(true, model.contains(List.of(timer.getTimestamp(), timer.getKey())), "stored " + timer + " is in the model");
          stored++;
        }
      }
      eq(model.size(), stored, "timers stored");
      // A new queue over the same database (a restore) drains exactly the model, in order.
      KeyGroupPartitionedPriorityQueue<TimerHeapInternalTimer<Long, VoidNamespace>, ?> again =
          StrataTimerSet.queue(db, t, range, total, 1, ser, cacheLimit);
      eq(model.size(), again.size(), "size after reopening");
      long last = Long.MIN_VALUE;
      for (TimerHeapInternalTimer<Long, VoidNamespace> x; (x = again.poll()) != null; ) {
        eq(true, x.getTimestamp() >= last, "order after reopening");
        last = x.getTimestamp();
        eq(true, model.remove(List.of(x.getTimestamp(), x.getKey())), "reopened queue polled " + x + " once, from the model");
      }
      eq(0, model.size(), "timers left after draining the reopened queue");
    } finally {
      StrataKeyedStateBackend.deleteTree(dir);
    }
  }

  static void eq(Object want, Object got, String what) {
    if (!java.util.Objects.equals(want, got)) {
      throw new AssertionError(what + ": expected " + want + ", got " + got);
    }
  }
}
