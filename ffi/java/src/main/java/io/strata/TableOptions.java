package io.strata;

/** Options of one state table (like a RocksDB column family). */
public final class TableOptions {
  /** How {@code merge} operands combine. */
  public enum Merge {
    /** {@code merge} is rejected. */
    NONE,
    /** Operands are appended to the value (list state). */
    APPEND,
    /** Operands are appended with a delimiter byte (RocksDB's string-append operator). */
    APPEND_DELIMITED,
    /** Little-endian 64-bit counters are added. */
    U64_ADD
  }

  /** Data-block compression of table files. */
  public enum Compression {
    NONE,
    LZ4,
    ZSTD
  }

  Merge merge = Merge.NONE;
  int delimiter = ',';
  int prefixLength;
  int keyGroupOffset;
  int keyGroupWidth;
  Compression compression = Compression.LZ4;

  public TableOptions merge(Merge merge) {
    this.merge = merge;
    return this;
  }

  /** The delimiter of {@link Merge#APPEND_DELIMITED}. */
  public TableOptions delimiter(byte delimiter) {
    this.delimiter = delimiter & 0xff;
    return this;
  }

  /** Length of the key prefix that groups keys for prefix scans (0: none). */
  public TableOptions prefixLength(int length) {
    if (length < 0 || length > 65535) {
      throw new IllegalArgumentException("prefix length " + length);
    }
    this.prefixLength = length;
    return this;
  }

  /**
   * Keys carry a big-endian key group of {@code width} (1 or 2) bytes at {@code offset}:
   * restores of a key-group subset keep only those keys of this table.
   */
  public TableOptions keyGroupField(int offset, int width) {
    if (offset < 0 || offset > 65535 || width < 1 || width > 2) {
      throw new IllegalArgumentException("key-group field at " + offset + ", width " + width);
    }
    this.keyGroupOffset = offset;
    this.keyGroupWidth = width;
    return this;
  }

  public TableOptions compression(Compression compression) {
    this.compression = compression;
    return this;
  }
}
