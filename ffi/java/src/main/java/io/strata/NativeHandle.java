package io.strata;

import java.lang.ref.Cleaner;

/**
 * Base of every class that owns a native object. {@link #close()} frees it once; an object
 * that is never closed is freed by a {@link Cleaner} after it becomes unreachable, so a
 * forgotten {@code close()} leaks nothing. A closed object's methods throw {@link
 * StrataException} with kind {@code CLOSED}.
 *
 * <p>As with rocksdbjni, closing an object while another thread is inside one of its
 * methods is a caller error.
 */
public abstract class NativeHandle implements AutoCloseable {
  private static final Cleaner CLEANER = Cleaner.create();

  private volatile long handle;
  private final Cleaner.Cleanable cleanable;

  NativeHandle(int kind, long handle) {
    if (handle == 0) {
      throw new IllegalArgumentException("no native object");
    }
    this.handle = handle;
    this.cleanable = CLEANER.register(this, new Release(kind, handle));
  }

  /** The native handle, or 0 once closed. */
  final long handle() {
    return handle;
  }

  /** Whether {@link #close()} has run. */
  public final boolean isClosed() {
    return handle == 0;
  }

  /** Hook for subclasses that must do something native before the object is freed. */
  void beforeRelease(long handle) throws StrataException {}

  @Override
  public void close() throws StrataException {
    long h;
    synchronized (this) {
      h = handle;
      if (h == 0) {
        return;
      }
      handle = 0;
    }
    try {
      beforeRelease(h);
    } finally {
      cleanable.clean();
    }
  }

  /** Frees one native object; holds no reference to its owner. */
  private static final class Release implements Runnable {
    private final int kind;
    private final long handle;

    Release(int kind, long handle) {
      this.kind = kind;
      this.handle = handle;
    }

    @Override
    public void run() {
      try {
        NativeLib.dispose(kind, handle);
      } catch (StrataException e) {
        // Disposal cannot fail for a handle of the right kind; nothing to report to.
      }
    }
  }
}
