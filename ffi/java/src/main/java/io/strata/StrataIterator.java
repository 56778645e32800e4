package io.strata;

import java.lang.ref.Reference;

/**
 * An ordered scan of one table at a snapshot. {@link #next()} advances; {@link #key()} and
 * {@link #value()} are the current entry.
 */
public final class StrataIterator extends NativeHandle {
  private byte[] key;
  private byte[] value;

  StrataIterator(long handle) {
    super(NativeLib.KIND_ITERATOR, handle);
  }

  /** Moves to the next entry; false at the end. */
  public boolean next() throws StrataException {
    try {
      byte[][] kv = NativeLib.iterNext(handle());
      if (kv == null) {
        key = null;
        value = null;
        return false;
      }
      key = kv[0];
      value = kv[1];
      return true;
    } finally {
      Reference.reachabilityFence(this);
    }
  }

  /** The current key (after a {@link #next()} that returned true). */
  public byte[] key() {
    if (key == null) {
      throw new IllegalStateException("no current entry");
    }
    return key;
  }

  /** The current value. */
  public byte[] value() {
    if (value == null) {
      throw new IllegalStateException("no current entry");
    }
    return value;
  }
}
