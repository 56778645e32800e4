package io.strata;

/** An error from the native engine, with its kind. */
public class StrataException extends Exception {
  private static final long serialVersionUID = 1L;

  /** What kind of error; the order matches the native library's codes. */
  public enum Kind {
    /** A bad argument (key too large, unknown table, invalid settings); nothing changed. */
    INVALID_ARGUMENT,
    /** Persisted data failed its checksum or validation; the message names the file. */
    CORRUPTION,
    /** The storage failed. */
    IO,
    /** The named object (a checkpoint, a file) does not exist. */
    NOT_FOUND,
    /** An earlier storage failure made the database refuse writes. */
    POISONED,
    /** The database or handle is closed. */
    CLOSED,
    /** A memory-only read needed storage I/O. */
    INCOMPLETE,
    /** Another writer holds the database, or the checkpoint exists already. */
    BUSY,
    /** A bug in the native library (a caught panic) or a failed JNI call. */
    INTERNAL
  }

  private final Kind kind;

  /** Called by the native library with the ordinal of the kind. */
  StrataException(int kind, String message) {
    this(kind >= 0 && kind < Kind.values().length ? Kind.values()[kind] : Kind.INTERNAL, message);
  }

  public StrataException(Kind kind, String message) {
    super(message);
    this.kind = kind;
  }

  /** The error's kind. */
  public Kind kind() {
    return kind;
  }

  @Override
  public String toString() {
    return "StrataException(" + kind + "): " + getMessage();
  }
}
