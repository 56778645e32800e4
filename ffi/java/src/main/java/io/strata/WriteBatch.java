package io.strata;

import java.lang.ref.Reference;

/** Operations applied atomically by {@link StrataDb#write(WriteBatch)}. */
public final class WriteBatch extends NativeHandle {
  public WriteBatch() throws StrataException {
    super(NativeLib.KIND_BATCH, newBatch());
  }

  private static long newBatch() throws StrataException {
    NativeLib.ensureLoaded();
    return NativeLib.batchNew();
  }

  public WriteBatch put(Table table, byte[] key, byte[] value) throws StrataException {
    return add(0, table, key, value);
  }

  public WriteBatch merge(Table table, byte[] key, byte[] operand) throws StrataException {
    return add(1, table, key, operand);
  }

  public WriteBatch delete(Table table, byte[] key) throws StrataException {
    return add(2, table, key, null);
  }

  private WriteBatch add(int op, Table table, byte[] key, byte[] value) throws StrataException {
    try {
      NativeLib.batchAdd(handle(), op, table.handle(), key, value);
      return this;
    } finally {
      Reference.reachabilityFence(this);
      Reference.reachabilityFence(table);
    }
  }

  /** Number of operations. */
  public int count() throws StrataException {
    try {
      return NativeLib.batchCount(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** Removes every operation. */
  public void clear() throws StrataException {
    try {
      NativeLib.batchClear(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }
}
