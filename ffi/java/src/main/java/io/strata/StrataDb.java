package io.strata;

import java.lang.ref.Reference;

/**
 * An open Strata database: tables, point reads and writes, batches, snapshots, ordered and
 * prefix iteration, flush, compaction, checkpoints and restore. Thread-safe. Close it (or
 * let it become unreachable: a Cleaner frees it) when done; a WAL-less database keeps only
 * what its checkpoints hold.
 */
public final class StrataDb extends NativeHandle {
  private StrataDb(long handle) {
    super(NativeLib.KIND_DB, handle);
  }

  /** Opens (or creates) the database in local directory {@code path}. */
  public static StrataDb open(String path, Options options) throws StrataException {
    if (path == null) {
      throw new StrataException(StrataException.Kind.INVALID_ARGUMENT, "path is null");
    }
    return openAt(path, options);
  }

  /** Opens a fresh database in memory (for tests). */
  public static StrataDb openInMemory(Options options) throws StrataException {
    return openAt(null, options);
  }

  private static StrataDb openAt(String path, Options options) throws StrataException {
    NativeLib.ensureLoaded();
    return new StrataDb(
        NativeLib.dbOpen(
            path,
            options.settingsJson(),
            options.keyGroupFirst(),
            options.keyGroupLast(),
            options.readOnly()));
  }

  /**
   * Creates a database in {@code path} (which must hold none) from checkpoint {@code ids[i]}
   * in {@code stores[i]}, restricted to the key groups of {@code options} if it names some.
   * Files are read in place from the stores, which must outlive the database.
   */
  public static StrataDb restore(
      String path, Options options, CheckpointStore[] stores, long[] ids)
      throws StrataException {
    NativeLib.ensureLoaded();
    long[] handles = new long[stores.length];
    for (int i = 0; i < stores.length; i++) {
      handles[i] = stores[i].handle();
    }
    try {
      return new StrataDb(
          NativeLib.dbRestore(
              path,
              options.settingsJson(),
              handles,
              ids,
              options.keyGroupFirst(),
              options.keyGroupLast()));
    } finally {
      Reference.reachabilityFence(stores);
    }
  }

  @Override
  void beforeRelease(long handle) throws StrataException {
    NativeLib.dbClose(handle);
  }

  /** Creates table {@code name}, or returns it if it exists with the same options. */
  public Table createTable(String name, TableOptions o) throws StrataException {
    try {
      long t =
          NativeLib.createTable(
              handle(),
              name,
              o.merge.ordinal(),
              o.delimiter,
              o.prefixLength,
              o.keyGroupOffset,
              o.keyGroupWidth,
              o.compression.ordinal());
      return new Table(t, name);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The table named {@code name}, or null. */
  public Table table(String name) throws StrataException {
    try {
      long t = NativeLib.table(handle(), name);
      return t == 0 ? null : new Table(t, name);
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Every table's name. */
  public String[] tableNames() throws StrataException {
    try {
      return NativeLib.tableNames(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  public void put(Table table, byte[] key, byte[] value) throws StrataException {
    try {
      NativeLib.put(handle(), table.handle(), key, value);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
    }
  }

  /** Adds a merge operand (the table's merge kind combines them). */
  public void merge(Table table, byte[] key, byte[] operand) throws StrataException {
    try {
      NativeLib.merge(handle(), table.handle(), key, operand);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
    }
  }

  public void delete(Table table, byte[] key) throws StrataException {
    try {
      NativeLib.delete(handle(), table.handle(), key);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
    }
  }

  /** The value of {@code key}, or null. */
  public byte[] get(Table table, byte[] key) throws StrataException {
    return get(null, table, key);
  }

  /** The value of {@code key} as of {@code snapshot} (null: the latest), or null. */
  public byte[] get(Snapshot snapshot, Table table, byte[] key) throws StrataException {
    try {
      long s = snapshot == null ? 0 : snapshotHandle(snapshot);
      return NativeLib.get(handle(), s, table.handle(), key);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
      Reference.reachabilityFence(snapshot);
    }
  }

  private static long snapshotHandle(Snapshot s) throws StrataException {
    long h = s.handle();
    if (h == 0) {
      throw new StrataException(StrataException.Kind.CLOSED, "the snapshot is closed");
    }
    return h;
  }

  /** Applies the batch atomically. */
  public void write(WriteBatch batch) throws StrataException {
    try {
      NativeLib.write(handle(), batch.handle());
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(batch);
    }
  }

  public Snapshot snapshot() throws StrataException {
    try {
      return new Snapshot(NativeLib.snapshotNew(handle()));
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Iterates {@code [start, end)} ({@code end} null: to the end of the table). */
  public StrataIterator range(Table table, byte[] start, byte[] end) throws StrataException {
    return iterator(null, table, start, end, false);
  }

  /** Iterates the keys starting with {@code prefix}. */
  public StrataIterator prefix(Table table, byte[] prefix) throws StrataException {
    return iterator(null, table, prefix, null, true);
  }

  /** As {@link #range} or {@link #prefix}, as of {@code snapshot} (null: a new one). */
  public StrataIterator iterator(
      Snapshot snapshot, Table table, byte[] start, byte[] end, boolean prefix)
      throws StrataException {
    try {
      long s = snapshot == null ? 0 : snapshotHandle(snapshot);
      return new StrataIterator(
          NativeLib.iterNew(handle(), s, table.handle(), start, end, prefix));
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
      Reference.reachabilityFence(snapshot);
    }
  }

  /** Writes everything in memory to table files. */
  public void flush() throws StrataException {
    try {
      NativeLib.flush(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Compacts every table and waits for it. */
  public void compact() throws StrataException {
    try {
      NativeLib.compact(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The engine's statistics, as text. */
  public String stats() throws StrataException {
    try {
      return NativeLib.stats(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The settings the database runs with, as JSON. */
  public String settingsJson() throws StrataException {
    try {
      return NativeLib.settingsJson(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /**
   * Takes checkpoint {@code id} into {@code store} (null: in place, referencing the
   * database's own files) and waits until it is confirmed.
   */
  public CheckpointInfo checkpoint(long id, CheckpointStore store) throws StrataException {
    try {
      return NativeLib.checkpoint(handle(), id, store == null ? 0 : store.handle());
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(store);
    }
  }

  /** Drops checkpoint {@code id} in {@code store} (null: in place). */
  public void releaseCheckpoint(long id, CheckpointStore store) throws StrataException {
    release(id, store, false);
  }

  /** Drops every checkpoint older than {@code id} in {@code store} (null: in place). */
  public void subsumeCheckpoints(long id, CheckpointStore store) throws StrataException {
    release(id, store, true);
  }

  private void release(long id, CheckpointStore store, boolean subsume) throws StrataException {
    try {
      NativeLib.releaseCheckpoint(handle(), id, store == null ? 0 : store.handle(), subsume);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(store);
    }
  }

  /**
   * Writes the manifest of a checkpoint whose files a host copied into {@code store} itself
   * (file {@code i} of the manifest at {@code paths[i]} there); returns its checkpoint id,
   * ready for {@link #restore}.
   */
  public static long rehomeCheckpoint(CheckpointStore store, byte[] manifest, String[] paths)
      throws StrataException {
    try {
      return NativeLib.rehomeCheckpoint(store.handle(), manifest, paths);
    } finally {
      Reference.reachabilityFence(store);
    }
  }

  /** Where a table's values keep Flink's state-TTL timestamp. */
  public enum TtlLayout {
    /** Value (and reducing/aggregating) state: the timestamp starts the value. */
    VALUE,
    /** Map state: a null flag byte, then the timestamp. */
    MAP,
    /** List state: length-prefixed elements, each starting with its timestamp. */
    LIST
  }

  /**
   * Drops values of {@code table} whose TTL timestamp plus {@code ttlMillis} has passed,
   * whenever data is rewritten (packing, flush, compaction); {@code ttlMillis <= 0} removes
   * the filter.
   */
  public void setTtlCompactionFilter(Table table, TtlLayout layout, long ttlMillis)
      throws StrataException {
    try {
      NativeLib.setFlinkTtlFilter(handle(), table.handle(), layout.ordinal(), ttlMillis);
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
    }
  }

  /** Native objects alive in this process (every kind), for leak checks. */
  public static long liveNativeObjects() {
    NativeLib.ensureLoaded();
    return NativeLib.liveObjects();
  }
}
