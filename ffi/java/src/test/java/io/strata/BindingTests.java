package io.strata;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The Java binding's tests: every class, the error paths, forgotten closes and a
 * native-memory check over 10^6 open/close cycles. Run by ffi/java/run-tests.sh; each method
 * named {@code test*} is one test, and the runner prints cargo-style "test result" lines.
 */
public final class BindingTests {
  private Path tmp;

  public static void main(String[] args) throws Exception {
    List<Method> tests = new ArrayList<>();
    for (Method m : BindingTests.class.getDeclaredMethods()) {
      if (m.getName().startsWith("test") && (args.length == 0 || Arrays.asList(args).contains(m.getName()))) {
        tests.add(m);
      }
    }
    tests.sort(Comparator.comparing(Method::getName));
    int passed = 0;
    int failed = 0;
    for (Method m : tests) {
      BindingTests t = new BindingTests();
      t.tmp = Files.createTempDirectory("strata-java-test");
      try {
        m.invoke(t);
        System.out.println("test " + m.getName() + " ... ok");
        passed++;
      } catch (InvocationTargetException e) {
        System.out.println("test " + m.getName() + " ... FAILED");
        e.getCause().printStackTrace(System.out);
        failed++;
      } finally {
        deleteTree(t.tmp);
      }
    }
    System.out.printf(
        "test result: %s. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (Java binding)%n",
        failed == 0 ? "ok" : "FAILED", passed, failed);
    System.exit(failed == 0 ? 0 : 1);
  }

  static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(q);
      }
    }
  }

  static void check(boolean ok, String what) {
    if (!ok) {
      throw new AssertionError(what);
    }
  }

  static void checkEq(Object expected, Object actual, String what) {
    boolean eq =
        expected instanceof byte[] && actual instanceof byte[]
            ? Arrays.equals((byte[]) expected, (byte[]) actual)
            : java.util.Objects.equals(expected, actual);
    if (!eq) {
      throw new AssertionError(what + ": expected " + show(expected) + ", got " + show(actual));
    }
  }

  static String show(Object o) {
    return o instanceof byte[] ? new String((byte[]) o, StandardCharsets.UTF_8) : String.valueOf(o);
  }

  interface Body {
    void run() throws Exception;
  }

  static StrataException expectError(StrataException.Kind kind, Body body) throws Exception {
    try {
      body.run();
    } catch (StrataException e) {
      checkEq(kind, e.kind(), "error kind of " + e.getMessage());
      return e;
    }
    throw new AssertionError("expected a StrataException of kind " + kind);
  }

  static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  static Options small() {
    return new Options().memoryBudget(64 << 20);
  }

  void testPutGetDeleteAcrossTables() throws Exception {
    try (StrataDb db = StrataDb.open(tmp.resolve("db").toString(), small());
        Table a = db.createTable("a", new TableOptions());
        Table c = db.createTable("c", new TableOptions())) {
      db.put(a, b("k"), b("in a"));
      db.put(c, b("k"), b("in c"));
      checkEq(b("in a"), db.get(a, b("k")), "table a");
      checkEq(b("in c"), db.get(c, b("k")), "table c");
      db.delete(a, b("k"));
      checkEq(null, db.get(a, b("k")), "deleted");
      checkEq(b("in c"), db.get(c, b("k")), "other table untouched");
      checkEq(null, db.get(a, b("missing")), "missing key");
      // Empty keys and values are values like any other.
      db.put(a, new byte[0], new byte[0]);
      checkEq(new byte[0], db.get(a, new byte[0]), "empty key and value");
      List<String> names = Arrays.asList(db.tableNames());
      check(names.contains("a") && names.contains("c") && names.contains("default"), "names " + names);
      try (Table again = db.table("a")) {
        checkEq(b(""), db.get(again, new byte[0]), "lookup by name");
      }
      checkEq(null, db.table("nope"), "unknown table");
    }
    // Reopen: the data survives a close (flush on close).
    try (StrataDb db = StrataDb.open(tmp.resolve("db").toString(), small());
        Table c = db.table("c")) {
      checkEq(b("in c"), db.get(c, b("k")), "after reopen");
    }
  }

  void testMergeKinds() throws Exception {
    try (StrataDb db = StrataDb.openInMemory(small());
        Table list = db.createTable("list", new TableOptions().merge(TableOptions.Merge.APPEND));
        Table csv =
            db.createTable(
                "csv",
                new TableOptions().merge(TableOptions.Merge.APPEND_DELIMITED).delimiter((byte) ','));
        Table counts = db.createTable("n", new TableOptions().merge(TableOptions.Merge.U64_ADD));
        Table plain = db.createTable("plain", new TableOptions())) {
      db.merge(list, b("k"), b("ab"));
      db.merge(list, b("k"), b("cd"));
      checkEq(b("abcd"), db.get(list, b("k")), "append");
      db.merge(csv, b("k"), b("x"));
      db.merge(csv, b("k"), b("y"));
      checkEq(b("x,y"), db.get(csv, b("k")), "delimited");
      byte[] one = new byte[8];
      one[0] = 1;
      for (int i = 0; i < 5; i++) {
        db.merge(counts, b("k"), one);
      }
      checkEq(5, (int) db.get(counts, b("k"))[0], "counter");
      expectError(StrataException.Kind.INVALID_ARGUMENT, () -> db.merge(plain, b("k"), b("x")));
      // The same table with other options is refused.
      expectError(
          StrataException.Kind.INVALID_ARGUMENT,
          () -> db.createTable("list", new TableOptions()));
    }
  }

  void testWriteBatchIsAtomicAndReusable() throws Exception {
    try (StrataDb db = StrataDb.openInMemory(small());
        Table t = db.createTable("t", new TableOptions().merge(TableOptions.Merge.APPEND));
        WriteBatch batch = new WriteBatch()) {
      db.put(t, b("gone"), b("x"));
      batch.put(t, b("a"), b("1")).merge(t, b("m"), b("p")).delete(t, b("gone"));
      checkEq(3, batch.count(), "count");
      checkEq(null, db.get(t, b("a")), "nothing before write");
      db.write(batch);
      checkEq(b("1"), db.get(t, b("a")), "put");
      checkEq(b("p"), db.get(t, b("m")), "merge");
      checkEq(null, db.get(t, b("gone")), "delete");
      db.write(batch);
      checkEq(b("pp"), db.get(t, b("m")), "written twice");
      batch.clear();
      checkEq(0, batch.count(), "cleared");
      // A bad entry fails the whole batch: nothing of it is applied.
      try (Table plain = db.createTable("plain", new TableOptions())) {
        batch.put(t, b("b"), b("2")).merge(plain, b("x"), b("y"));
        expectError(StrataException.Kind.INVALID_ARGUMENT, () -> db.write(batch));
        checkEq(null, db.get(t, b("b")), "failed batch applied nothing");
      }
    }
  }

  void testSnapshotsAndIterators() throws Exception {
    try (StrataDb db = StrataDb.openInMemory(small());
        Table t = db.createTable("t", new TableOptions().prefixLength(2))) {
      TreeMap<String, String> model = new TreeMap<>();
      for (int i = 0; i < 300; i++) {
        String k = String.format("%c%c%04d", 'a' + i % 3, 'x', i);
        db.put(t, b(k), b("v" + i));
        model.put(k, "v" + i);
      }
      db.flush();
      try (Snapshot snap = db.snapshot()) {
        long seq = snap.sequence();
        db.put(t, b("ax9999"), b("later"));
        db.delete(t, b("ax0000"));
        checkEq(b("v0"), db.get(snap, t, b("ax0000")), "snapshot read");
        checkEq(null, db.get(snap, t, b("ax9999")), "snapshot hides later writes");
        check(seq > 0, "sequence " + seq);
        // A prefix scan at the snapshot yields the model's keys in order.
        List<String> seen = new ArrayList<>();
        try (StrataIterator it = db.iterator(snap, t, b("ax"), null, true)) {
          while (it.next()) {
            seen.add(show(it.key()));
            checkEq(b(model.get(show(it.key()))), it.value(), "value of " + show(it.key()));
          }
          check(!it.next(), "stays at the end");
        }
        checkEq(new ArrayList<>(model.subMap("ax", "ay").keySet()), seen, "prefix scan");
      }
      List<String> range = new ArrayList<>();
      try (StrataIterator it = db.range(t, b("bx0100"), b("bx0200"))) {
        while (it.next()) {
          range.add(show(it.key()));
        }
      }
      checkEq(new ArrayList<>(model.subMap("bx0100", "bx0200").keySet()), range, "range scan");
      try (StrataIterator it = db.prefix(t, b("ax"))) {
        check(it.next(), "first");
        checkEq("ax0003", show(it.key()), "deleted key skipped, latest state");
      }
    }
  }

  void testErrorsAreTypedAndNothingCrashes() throws Exception {
    StrataDb db = StrataDb.openInMemory(small());
    Table t = db.createTable("t", new TableOptions());
    expectError(StrataException.Kind.INVALID_ARGUMENT, () -> db.put(t, null, b("v")));
    expectError(StrataException.Kind.INVALID_ARGUMENT, () -> db.get(t, null));
    expectError(StrataException.Kind.INVALID_ARGUMENT, () -> db.put(t, new byte[1 << 20], b("v")));
    expectError(
        StrataException.Kind.INVALID_ARGUMENT,
        () -> StrataDb.openInMemory(new Options().set("no_such_setting", "1")));
    expectError(
        StrataException.Kind.INVALID_ARGUMENT,
        () -> StrataDb.openInMemory(new Options().set("memory_budget_bytes", "\"lots\"")));
    expectError(StrataException.Kind.INVALID_ARGUMENT, () -> StrataDb.open(null, small()));
    // A panic inside the native library becomes an exception, not a crash.
    StrataException e = expectError(StrataException.Kind.INTERNAL, NativeLib::debugPanic);
    check(e.getMessage().contains("debugPanic"), e.getMessage());
    Snapshot snap = db.snapshot();
    WriteBatch batch = new WriteBatch();
    StrataIterator it = db.prefix(t, b(""));
    db.put(t, b("k"), b("v"));
    // Closed objects: each use is CLOSED; closing twice is harmless.
    t.close();
    t.close();
    expectError(StrataException.Kind.CLOSED, () -> db.get(t, b("k")));
    expectError(StrataException.Kind.CLOSED, () -> batch.put(t, b("k"), b("v")));
    snap.close();
    expectError(StrataException.Kind.CLOSED, () -> snap.sequence());
    batch.close();
    expectError(StrataException.Kind.CLOSED, () -> batch.count());
    it.close();
    expectError(StrataException.Kind.CLOSED, () -> it.next());
    try (Table t2 = db.table("t")) {
      db.close();
      expectError(StrataException.Kind.CLOSED, () -> db.get(t2, b("k")));
      expectError(StrataException.Kind.CLOSED, () -> db.snapshot());
    }
    check(db.isClosed(), "closed");
    // A second open of the same directory while the first is open is BUSY.
    String path = tmp.resolve("busy").toString();
    try (StrataDb first = StrataDb.open(path, small())) {
      check(!first.isClosed(), "first open");
      expectError(StrataException.Kind.BUSY, () -> StrataDb.open(path, small()));
    }
  }

  void testCheckpointRestoreAndRescale() throws Exception {
    String path = tmp.resolve("db").toString();
    TableOptions kg = new TableOptions().keyGroupField(0, 1);
    TreeMap<Integer, String> model = new TreeMap<>();
    CheckpointStore store = CheckpointStore.local(tmp.resolve("ckpt").toString(), "job");
    CheckpointInfo info;
    try (StrataDb db = StrataDb.open(path, small().keyGroups(0, 9));
        Table t = db.createTable("t", kg)) {
      for (int i = 0; i < 1000; i++) {
        db.put(t, key(i), b("v" + i));
        model.put(i, "v" + i);
      }
      info = db.checkpoint(1, store);
      check(info.fileCount() > 0 && info.bytesUploaded() > 0, "uploaded files");
      for (int i = 0; i < 1000; i += 2) {
        db.put(t, key(i), b("after"));
      }
      CheckpointInfo inPlace = db.checkpoint(2, null);
      checkEq(0L, inPlace.bytesUploaded(), "in place copies nothing");
      check(inPlace.localFile(0) != null && Files.exists(Path.of(inPlace.localFile(0))), "local file");
      db.releaseCheckpoint(2, null);
      expectError(StrataException.Kind.BUSY, () -> db.checkpoint(1, store));
    }
    // Restore everything: checkpoint 1's state, not the later writes.
    try (StrataDb r = StrataDb.restore(tmp.resolve("r1").toString(), small(), new CheckpointStore[] {store}, new long[] {1});
        Table t = r.table("t")) {
      checkEq(model, scan(r, t), "restored state");
    }
    // Scale out: key groups 0..4 only (the key group is the first byte: i % 10).
    try (StrataDb r =
            StrataDb.restore(
                tmp.resolve("r2").toString(), small().keyGroups(0, 4), new CheckpointStore[] {store}, new long[] {1});
        Table t = r.table("t")) {
      TreeMap<Integer, String> want = new TreeMap<>();
      model.forEach((k, v) -> { if (k % 10 <= 4) want.put(k, v); });
      checkEq(want, scan(r, t), "key groups 0..4");
      checkEq(null, r.get(t, key(7)), "key group 7 is gone");
    }
    // A host copies the files itself and rehomes the manifest (what the Flink backend does).
    Path copy = tmp.resolve("copied");
    CheckpointInfo inPlace;
    try (StrataDb db = StrataDb.open(path, small())) {
      inPlace = db.checkpoint(3, null);
    }
    String[] paths = new String[inPlace.fileCount()];
    for (int i = 0; i < inPlace.fileCount(); i++) {
      paths[i] = "files/f" + i + ".sst";
    }
    for (int i = 0; i < inPlace.fileCount(); i++) {
      Path to = copy.resolve(paths[i]);
      Files.createDirectories(to.getParent());
      Files.copy(Path.of(inPlace.localFile(i)), to);
    }
    try (CheckpointStore home = CheckpointStore.local(copy.toString(), "checkpoints")) {
      long id = StrataDb.rehomeCheckpoint(home, inPlace.manifest(), paths);
      checkEq(3L, id, "rehomed id");
      expectError(
          StrataException.Kind.INVALID_ARGUMENT,
          () -> StrataDb.rehomeCheckpoint(home, inPlace.manifest(), new String[0]));
      expectError(
          StrataException.Kind.CORRUPTION,
          () -> StrataDb.rehomeCheckpoint(home, new byte[] {1, 2, 3}, new String[0]));
      try (StrataDb r = StrataDb.restore(tmp.resolve("r3").toString(), small(), new CheckpointStore[] {home}, new long[] {3});
          Table t = r.table("t")) {
        TreeMap<Integer, String> want = new TreeMap<>(model);
        for (int i = 0; i < 1000; i += 2) {
          want.put(i, "after");
        }
        checkEq(want, scan(r, t), "rehomed restore");
      }
      // Damage a copied file: the restore (or the first read) reports corruption naming it.
      Path victim = copy.resolve(paths[0]);
      try (RandomAccessFile f = new RandomAccessFile(victim.toFile(), "rw")) {
        f.seek(f.length() / 2);
        int x = f.read();
        f.seek(f.length() / 2);
        f.write(x ^ 0xff);
      }
      StrataException e =
          expectError(
              StrataException.Kind.CORRUPTION,
              () -> {
                try (StrataDb r = StrataDb.restore(tmp.resolve("r4").toString(), small(), new CheckpointStore[] {home}, new long[] {3});
                    Table t = r.table("t")) {
                  scan(r, t);
                }
              });
      check(e.getMessage().contains("f0.sst"), "names the file: " + e.getMessage());
      expectError(
          StrataException.Kind.NOT_FOUND,
          () -> StrataDb.restore(tmp.resolve("r5").toString(), small(), new CheckpointStore[] {home}, new long[] {42}));
    }
    store.close();
  }

  static byte[] key(int i) {
    byte[] k = b(String.format("_%08d", i));
    k[0] = (byte) (i % 10);
    return k;
  }

  static TreeMap<Integer, String> scan(StrataDb db, Table t) throws StrataException {
    TreeMap<Integer, String> out = new TreeMap<>();
    try (StrataIterator it = db.range(t, new byte[0], null)) {
      while (it.next()) {
        byte[] k = it.key();
        out.put(Integer.parseInt(new String(k, 1, k.length - 1, StandardCharsets.UTF_8)), show(it.value()));
      }
    }
    return out;
  }

  void testTtlCompactionFilterDropsExpiredValues() throws Exception {
    long now = System.currentTimeMillis();
    try (StrataDb db = StrataDb.open(tmp.resolve("db").toString(), small());
        Table v = db.createTable("v", new TableOptions());
        Table m = db.createTable("m", new TableOptions());
        Table l = db.createTable("l", new TableOptions().merge(TableOptions.Merge.APPEND));
        CheckpointStore store = CheckpointStore.local(tmp.resolve("ckpt").toString(), "")) {
      db.setTtlCompactionFilter(v, StrataDb.TtlLayout.VALUE, 60_000);
      db.setTtlCompactionFilter(m, StrataDb.TtlLayout.MAP, 60_000);
      db.setTtlCompactionFilter(l, StrataDb.TtlLayout.LIST, 60_000);
      db.put(v, b("old"), ttlValue(now - 120_000, "x"));
      db.put(v, b("new"), ttlValue(now, "y"));
      db.put(m, b("old"), withNullFlag(ttlValue(now - 120_000, "x")));
      db.put(m, b("new"), withNullFlag(ttlValue(now, "y")));
      db.merge(l, b("k"), element(now - 120_000, "old"));
      db.merge(l, b("k"), element(now, "new"));
      db.merge(l, b("gone"), element(now - 120_000, "old"));
      // The filter runs when data is rewritten (the flush of the checkpoint, compaction);
      // what reaches the files is what a restore sees.
      db.checkpoint(1, store);
      try (StrataDb r = StrataDb.restore(tmp.resolve("r").toString(), small(), new CheckpointStore[] {store}, new long[] {1});
          Table rv = r.table("v");
          Table rm = r.table("m");
          Table rl = r.table("l")) {
        checkEq(null, r.get(rv, b("old")), "expired value dropped");
        checkEq(ttlValue(now, "y"), r.get(rv, b("new")), "live value kept");
        checkEq(null, r.get(rm, b("old")), "expired map entry dropped");
        checkEq(withNullFlag(ttlValue(now, "y")), r.get(rm, b("new")), "live map entry kept");
        checkEq(element(now, "new"), r.get(rl, b("k")), "expired element dropped");
        checkEq(null, r.get(rl, b("gone")), "list with only expired elements dropped");
      }
      db.setTtlCompactionFilter(v, StrataDb.TtlLayout.VALUE, 0);
      db.put(v, b("old"), ttlValue(now - 120_000, "x"));
      db.flush();
      db.compact();
      checkEq(ttlValue(now - 120_000, "x"), db.get(v, b("old")), "filter removed");
    }
  }

  static byte[] withNullFlag(byte[] v) {
    byte[] out = new byte[v.length + 1];
    System.arraycopy(v, 0, out, 1, v.length);
    return out;
  }

  static byte[] ttlValue(long ts, String v) {
    return java.nio.ByteBuffer.allocate(8 + v.length()).putLong(ts).put(b(v)).array();
  }

  static byte[] element(long ts, String v) {
    byte[] e = ttlValue(ts, v);
    return java.nio.ByteBuffer.allocate(4 + e.length).putInt(e.length).put(e).array();
  }

  void testForgottenCloseIsFreedByTheCleaner() throws Exception {
    long before = StrataDb.liveNativeObjects();
    makeGarbage(20_000);
    check(StrataDb.liveNativeObjects() >= before + 20_000, "objects were created");
    // The Cleaner runs on its own thread once the objects are unreachable: wait for the
    // count to come back (a condition, bounded), with garbage collections in between.
    for (int i = 0; i < 2_000 && StrataDb.liveNativeObjects() > before; i++) {
      System.gc();
      Thread.yield();
    }
    long after = StrataDb.liveNativeObjects();
    check(after <= before, "every forgotten object was freed: " + before + " before, " + after + " after");
  }

  private static void makeGarbage(int n) throws StrataException {
    StrataDb db = StrataDb.openInMemory(small());
    Table t = db.createTable("t", new TableOptions());
    for (int i = 0; i < n / 2; i++) {
      new WriteBatch().put(t, b("k"), b("v"));
      db.snapshot();
    }
  }

  void testMillionOpenCloseCyclesDoNotGrowNativeMemory() throws Exception {
    try (StrataDb db = StrataDb.openInMemory(small());
        Table t = db.createTable("t", new TableOptions())) {
      db.put(t, b("k"), b("v"));
      long live = StrataDb.liveNativeObjects();
      cycles(db, t, 100_000);
      long rssWarm = rssKib();
      cycles(db, t, 1_000_000);
      long rssAfter = rssKib();
      checkEq(live, StrataDb.liveNativeObjects(), "native objects after 10^6 cycles");
      System.out.printf("10^6 open/close cycles: RSS %d -> %d KiB%n", rssWarm, rssAfter);
      check(rssAfter - rssWarm < 32 * 1024, "RSS grew by " + (rssAfter - rssWarm) + " KiB");
    }
  }

  private static void cycles(StrataDb db, Table t, int n) throws StrataException {
    for (int i = 0; i < n; i++) {
      switch (i % 4) {
        case 0 -> {
          try (WriteBatch wb = new WriteBatch()) {
            wb.put(t, b("k"), b("v"));
          }
        }
        case 1 -> {
          try (Snapshot s = db.snapshot()) {
            s.sequence();
          }
        }
        case 2 -> {
          try (StrataIterator it = db.prefix(t, b("k"))) {
            it.next();
          }
        }
        default -> {
          try (Table again = db.table("t")) {
            again.name();
          }
        }
      }
    }
  }

  static long rssKib() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    throw new IOException("no VmRSS in /proc/self/status");
  }
}
