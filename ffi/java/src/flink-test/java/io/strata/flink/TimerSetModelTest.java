package io.strata.flink;

import io.strata.Options;
import io.strata.StrataDb;
import io.strata.Table;
import io.strata.TableOptions;
import java.util.Random;
import java.util.TreeSet;
import org.apache.flink.api.common.typeutils.base.LongSerializer;

/**
 * Model check of {@link StrataTimerSet} against a {@code TreeSet}: random adds, removes and
 * polls with a tiny cache, so the cache runs dry, overflows and refills constantly; every
 * return value (new head, removed head, polled element, size) must match the model.
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
    System.out.printf(
        "test result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (timer set model)%n",
        failures == 0 ? "ok" : "FAILED", 4 - failures, failures);
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

  static void eq(Object want, Object got, String what) {
    if (!java.util.Objects.equals(want, got)) {
      throw new AssertionError(what + ": expected " + want + ", got " + got);
    }
  }
}
