package io.strata;

/** A handle to a state table of one open database. */
public final class Table extends NativeHandle {
  private final String name;

  Table(long handle, String name) {
    super(NativeLib.KIND_TABLE, handle);
    this.name = name;
  }

  /** The table's name. */
  public String name() {
    return name;
  }

  @Override
  public String toString() {
    return "Table(" + name + ")";
  }
}
