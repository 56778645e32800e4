package io.strata;

import java.lang.ref.Reference;

/** A consistent read view of a database; reads through it see nothing written later. */
public final class Snapshot extends NativeHandle {
  Snapshot(long handle) {
    super(NativeLib.KIND_SNAPSHOT, handle);
  }

  /** The last sequence number it sees. */
  public long sequence() throws StrataException {
    try {
      return NativeLib.snapshotSequence(handle());
    } finally {
      Reference.reachabilityFence(this);
    }
  }
}
