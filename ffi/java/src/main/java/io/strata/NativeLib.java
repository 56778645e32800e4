package io.strata;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The native methods of the JNI library (ffi/java/src/lib.rs), and its loading. Handles are
 * owned by the public classes; nothing here is public.
 *
 * <p>The library is found, in order: at the path in the system property {@code
 * strata.library.path}; as the resource {@code /io/strata/native/libstrata_jni.so} of the jar
 * (extracted to a temporary file, as rocksdbjni does); on {@code java.library.path}.
 */
final class NativeLib {
  static final int KIND_DB = 1;
  static final int KIND_TABLE = 2;
  static final int KIND_BATCH = 3;
  static final int KIND_SNAPSHOT = 4;
  static final int KIND_ITERATOR = 5;
  static final int KIND_STORE = 6;

  static {
    load();
  }

  private NativeLib() {}

  private static void load() {
    String explicit = System.getProperty("strata.library.path");
    if (explicit != null) {
      System.load(explicit);
      return;
    }
    String name = System.mapLibraryName("strata_jni");
    try (InputStream in = NativeLib.class.getResourceAsStream("/io/strata/native/" + name)) {
      if (in != null) {
        Path tmp = Files.createTempFile("strata_jni", name);
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        tmp.toFile().deleteOnExit();
        System.load(tmp.toAbsolutePath().toString());
        return;
      }
    } catch (IOException e) {
      throw new UnsatisfiedLinkError("extracting " + name + ": " + e);
    }
    System.loadLibrary("strata_jni");
  }

  /** Makes sure the library is loaded (the static initializer runs once). */
  static void ensureLoaded() {}

  static native long liveObjects();

  static native void debugPanic() throws StrataException;

  static native void dispose(int kind, long handle) throws StrataException;

  static native long dbOpen(
      String path, String settingsJson, int kgFirst, int kgLast, boolean readOnly)
      throws StrataException;

  static native long dbRestore(
      String path, String settingsJson, long[] stores, long[] ids, int kgFirst, int kgLast)
      throws StrataException;

  static native void dbClose(long db) throws StrataException;

  static native long createTable(
      long db,
      String name,
      int merge,
      int delimiter,
      int prefixLen,
      int kgOffset,
      int kgWidth,
      int compression)
      throws StrataException;

  static native long table(long db, String name) throws StrataException;

  static native String[] tableNames(long db) throws StrataException;

  static native void put(long db, long table, byte[] key, byte[] value) throws StrataException;

  static native void merge(long db, long table, byte[] key, byte[] operand)
      throws StrataException;

  static native void delete(long db, long table, byte[] key) throws StrataException;

  static native byte[] get(long db, long snapshot, long table, byte[] key)
      throws StrataException;

  static native void write(long db, long batch) throws StrataException;

  static native void flush(long db) throws StrataException;

  static native void compact(long db) throws StrataException;

  static native String stats(long db) throws StrataException;

  static native String settingsJson(long db) throws StrataException;

  static native long batchNew() throws StrataException;

  static native void batchAdd(long batch, int op, long table, byte[] key, byte[] value)
      throws StrataException;

  static native int batchCount(long batch) throws StrataException;

  static native void batchClear(long batch) throws StrataException;

  static native long snapshotNew(long db) throws StrataException;

  static native long snapshotSequence(long snapshot) throws StrataException;

  static native long iterNew(
      long db, long snapshot, long table, byte[] start, byte[] end, boolean prefix)
      throws StrataException;

  static native byte[][] iterNext(long iterator) throws StrataException;

  static native long storeLocal(String dir, String prefix) throws StrataException;

  static native CheckpointInfo checkpoint(long db, long id, long store) throws StrataException;

  static native void releaseCheckpoint(long db, long id, long store, boolean subsume)
      throws StrataException;

  static native long rehomeCheckpoint(long store, byte[] manifest, String[] paths)
      throws StrataException;

  static native void setFlinkTtlFilter(long db, long table, int layout, long ttlMillis)
      throws StrataException;
}
