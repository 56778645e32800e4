package io.strata;

import java.util.Arrays;

/**
 * A completed checkpoint: its id, the manifest's bytes, and where each table file it
 * references lives (store location such as {@code file:///dir}, path in that store, size).
 */
public final class CheckpointInfo {
  private final long id;
  private final byte[] manifest;
  private final String[] locations;
  private final String[] paths;
  private final long[] sizes;
  private final long bytesUploaded;
  private final long syncNanos;
  private final long totalNanos;

  CheckpointInfo(
      long id,
      byte[] manifest,
      String[] locations,
      String[] paths,
      long[] sizes,
      long bytesUploaded,
      long syncNanos,
      long totalNanos) {
    this.id = id;
    this.manifest = manifest;
    this.locations = locations;
    this.paths = paths;
    this.sizes = sizes;
    this.bytesUploaded = bytesUploaded;
    this.syncNanos = syncNanos;
    this.totalNanos = totalNanos;
  }

  public long id() {
    return id;
  }

  /** The encoded checkpoint manifest (DESIGN.md §8). */
  public byte[] manifest() {
    return manifest.clone();
  }

  /** Number of table files. */
  public int fileCount() {
    return paths.length;
  }

  /** Location of the store holding file {@code i}. */
  public String fileLocation(int i) {
    return locations[i];
  }

  /** Path of file {@code i} in its store. */
  public String filePath(int i) {
    return paths[i];
  }

  /**
   * File {@code i} as a local path, if its store is a local directory ({@code file://}),
   * else null.
   */
  public String localFile(int i) {
    String loc = locations[i];
    if (!loc.startsWith("file://")) {
      return null;
    }
    String dir = loc.substring("file://".length());
    return dir.endsWith("/") ? dir + paths[i] : dir + "/" + paths[i];
  }

  public long fileSize(int i) {
    return sizes[i];
  }

  /** Total size of the files. */
  public long bytes() {
    return Arrays.stream(sizes).sum();
  }

  /** Bytes this checkpoint copied into its store (0 in place). */
  public long bytesUploaded() {
    return bytesUploaded;
  }

  /** Time of the synchronous part (the flush), in nanoseconds. */
  public long syncNanos() {
    return syncNanos;
  }

  /** Time until the checkpoint was confirmed, in nanoseconds. */
  public long totalNanos() {
    return totalNanos;
  }
}
