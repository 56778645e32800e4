package io.strata;

/** A place checkpoints are written to and restored from. */
public final class CheckpointStore extends NativeHandle {
  private final String description;

  private CheckpointStore(long handle, String description) {
    super(NativeLib.KIND_STORE, handle);
    this.description = description;
  }

  /** Checkpoints under {@code prefix} of the local directory {@code dir} (created if needed). */
  public static CheckpointStore local(String dir, String prefix) throws StrataException {
    NativeLib.ensureLoaded();
    return new CheckpointStore(NativeLib.storeLocal(dir, prefix), dir + "/" + prefix);
  }

  @Override
  public String toString() {
    return "CheckpointStore(" + description + ")";
  }
}
