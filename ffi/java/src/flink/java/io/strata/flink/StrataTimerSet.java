package io.strata.flink;

import io.strata.StrataDb;
import io.strata.StrataException;
import io.strata.StrataIterator;
import io.strata.Table;
import java.io.IOException;
import java.util.Arrays;
import java.util.NoSuchElementException;
import java.util.TreeSet;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.InternalPriorityQueue;
import org.apache.flink.runtime.state.KeyExtractorFunction;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.Keyed;
import org.apache.flink.runtime.state.PriorityComparable;
import org.apache.flink.runtime.state.PriorityComparator;
import org.apache.flink.runtime.state.heap.KeyGroupPartitionedPriorityQueue;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * The timers of one key group, in Strata: keys (key group, byte-ordered serialized timer),
 * so the table's order is the timers' order. A bounded cache holds the smallest timers (all
 * of them while {@code complete}); the database is written through, so it always holds the
 * whole set and a checkpoint includes it. Flink's {@code KeyGroupPartitionedPriorityQueue}
 * keeps one per key group in a heap ordered by their heads.
 */
final class StrataTimerSet<T> implements InternalPriorityQueue<T>, HeapPriorityQueueElement {
  /**
   * Timers a set keeps in memory at most (the smallest ones; the database holds them all):
   * 128 per key group, as Flink's RocksDB backend caches, so timer memory stays bounded.
   * {@code -Dstrata.timer.cache.limit=N} changes it.
   */
  static final int CACHE_LIMIT = Integer.getInteger("strata.timer.cache.limit", 128);
  private static final byte[] EMPTY = new byte[0];

  private final StrataDb db;
  private final Table table;
  private final int prefixBytes;
  private final byte[] groupPrefix;
  private final TypeSerializer<T> serializer;
  private final TreeSet<byte[]> cache = new TreeSet<>(Arrays::compareUnsigned);
  /** The cache holds every timer of the group. */
  private boolean complete;
  private int internalIndex = HeapPriorityQueueElement.NOT_CONTAINED;
  private final DataOutputSerializer out = new DataOutputSerializer(32);
  private final DataInputDeserializer in = new DataInputDeserializer();

  private final int cacheLimit;

  /**
   * The timer queue of one timer service: one set per key group of {@code range}, each under
   * its key group's prefix in {@code table}, merged by Flink's {@code
   * KeyGroupPartitionedPriorityQueue}.
   */
  static <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
      KeyGroupPartitionedPriorityQueue<T, StrataTimerSet<T>> queue(
          StrataDb db,
          Table table,
          KeyGroupRange range,
          int numberOfKeyGroups,
          int prefixBytes,
          TypeSerializer<T> serializer,
          int cacheLimit) {
    return new KeyGroupPartitionedPriorityQueue<T, StrataTimerSet<T>>(
        KeyExtractorFunction.forKeyedObjects(),
        PriorityComparator.forPriorityComparableObjects(),
        // Flink passes (key group, total key groups, ...).
        (keyGroup, totalKeyGroups, keyExtractor, comparator) ->
            new StrataTimerSet<>(db, table, keyGroup, prefixBytes, serializer.duplicate(), cacheLimit),
        range,
        numberOfKeyGroups);
  }

  StrataTimerSet(
      StrataDb db, Table table, int keyGroup, int prefixBytes, TypeSerializer<T> serializer, int cacheLimit) {
    this.cacheLimit = cacheLimit;
    this.db = db;
    this.table = table;
    this.prefixBytes = prefixBytes;
    this.serializer = serializer;
    this.groupPrefix = new byte[prefixBytes];
    CompositeKeySerializationUtils.serializeKeyGroup(keyGroup, groupPrefix);
  }

  private byte[] keyOf(T element) {
    try {
      out.clear();
      out.write(groupPrefix);
      serializer.serialize(element, out);
      return out.getCopyOfBuffer();
    } catch (IOException e) {
      throw new FlinkRuntimeException("serializing a timer", e);
    }
  }

  private T parse(byte[] key) {
    try {
      in.setBuffer(key, prefixBytes, key.length - prefixBytes);
      return serializer.deserialize(in);
    } catch (IOException e) {
      throw new FlinkRuntimeException("deserializing a timer", e);
    }
  }

  /** Loads the smallest timers from the database when the cache ran dry. */
  private void fill() {
    if (complete || !cache.isEmpty()) {
      return;
    }
    try (StrataIterator it = db.prefix(table, groupPrefix)) {
      while (cache.size() < cacheLimit && it.next()) {
        cache.add(it.key());
      }
      complete = cache.size() < cacheLimit || !it.next();
    } catch (StrataException e) {
      throw new FlinkRuntimeException("reading timers", e);
    }
  }

  @Override
  public T peek() {
    fill();
    return cache.isEmpty() ? null : parse(cache.first());
  }

  @Override
  public T poll() {
    fill();
    byte[] first = cache.pollFirst();
    if (first == null) {
      return null;
    }
    delete(first);
    return parse(first);
  }

  @Override
  public boolean add(T element) {
    byte[] key = keyOf(element);
    fill();
    boolean newHead = false;
    if (complete || Arrays.compareUnsigned(key, cache.last()) < 0) {
      if (!cache.add(key)) {
        return false;
      }
      newHead = cache.first() == key;
      if (cache.size() > cacheLimit) {
        cache.pollLast();
        complete = false;
      }
    }
    try {
      db.put(table, key, EMPTY);
    } catch (StrataException e) {
      throw new FlinkRuntimeException("adding a timer", e);
    }
    return newHead;
  }

  @Override
  public boolean remove(T element) {
    byte[] key = keyOf(element);
    fill();
    boolean wasHead = !cache.isEmpty() && Arrays.equals(cache.first(), key);
    cache.remove(key);
    delete(key);
    return wasHead;
  }

  private void delete(byte[] key) {
    try {
      db.delete(table, key);
    } catch (StrataException e) {
      throw new FlinkRuntimeException("deleting a timer", e);
    }
  }

  @Override
  public boolean isEmpty() {
    fill();
    return cache.isEmpty();
  }

  @Override
  public int size() {
    fill();
    if (complete) {
      return cache.size();
    }
    int n = 0;
    try (StrataIterator it = db.prefix(table, groupPrefix)) {
      while (it.next()) {
        n++;
      }
    } catch (StrataException e) {
      throw new FlinkRuntimeException("counting timers", e);
    }
    return n;
  }

  @Override
  public void addAll(java.util.Collection<? extends T> elements) {
    if (elements != null) {
      for (T e : elements) {
        add(e);
      }
    }
  }

  @Override
  public CloseableIterator<T> iterator() {
    StrataIterator it;
    try {
      it = db.prefix(table, groupPrefix);
    } catch (StrataException e) {
      throw new FlinkRuntimeException("iterating timers", e);
    }
    return new CloseableIterator<>() {
      private byte[] next;

      @Override
      public boolean hasNext() {
        try {
          if (next == null && it.next()) {
            next = it.key();
          }
          return next != null;
        } catch (StrataException e) {
          throw new FlinkRuntimeException("iterating timers", e);
        }
      }

      @Override
      public T next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        byte[] k = next;
        next = null;
        return parse(k);
      }

      @Override
      public void close() throws StrataException {
        it.close();
      }
    };
  }

  @Override
  public int getInternalIndex() {
    return internalIndex;
  }

  @Override
  public void setInternalIndex(int newIndex) {
    internalIndex = newIndex;
  }
}
