package io.strata.flink;

import io.strata.StrataDb;
import io.strata.StrataException;
import io.strata.Table;
import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.internal.InternalKvState;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * What every Strata state object shares: its table, the current namespace, the composite
 * key of (current key, namespace) and reusable serialization buffers. Used by the task
 * thread only, as Flink's state objects are.
 */
abstract class AbstractStrataState<K, N, V> implements InternalKvState<K, N, V> {
  final StrataKeyedStateBackend<K> backend;
  final StrataDb db;
  final Table table;
  final TypeSerializer<N> namespaceSerializer;
  final TypeSerializer<V> valueSerializer;
  N currentNamespace;
  final DataOutputSerializer out = new DataOutputSerializer(64);
  final DataInputDeserializer in = new DataInputDeserializer();

  AbstractStrataState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> namespaceSerializer,
      TypeSerializer<V> valueSerializer) {
    this.backend = backend;
    this.db = backend.db;
    this.table = table;
    this.namespaceSerializer = namespaceSerializer.duplicate();
    this.valueSerializer = valueSerializer.duplicate();
  }

  @Override
  public void setCurrentNamespace(N namespace) {
    currentNamespace = namespace;
  }

  /** The composite key of the current key and {@code namespace}. */
  byte[] keyOf(N namespace) {
    return backend.keyBuilder.buildCompositeKeyNamespace(namespace, namespaceSerializer);
  }

  byte[] currentKey() {
    return keyOf(currentNamespace);
  }

  byte[] serializeValue(V v) throws IOException {
    out.clear();
    valueSerializer.serialize(v, out);
    return out.getCopyOfBuffer();
  }

  V deserializeValue(byte[] b) throws IOException {
    in.setBuffer(b);
    return valueSerializer.deserialize(in);
  }

  byte[] getRaw(byte[] key) throws IOException {
    try {
      return db.get(table, key);
    } catch (StrataException e) {
      throw new IOException(e);
    }
  }

  void putRaw(byte[] key, byte[] value) throws IOException {
    try {
      db.put(table, key, value);
    } catch (StrataException e) {
      throw new IOException(e);
    }
  }

  void deleteRaw(byte[] key) throws IOException {
    try {
      db.delete(table, key);
    } catch (StrataException e) {
      throw new IOException(e);
    }
  }

  /** Combines two values of a merging state (a reduce function, an accumulator merge). */
  interface Combine<V> {
    V apply(V a, V b) throws Exception;
  }

  /** Stores {@code value} for the current namespace, or clears it if null. */
  void putOrClear(V value) throws IOException {
    if (value == null) {
      clear();
    } else {
      putRaw(currentKey(), serializeValue(value));
    }
  }

  /**
   * Session-window merge for single-value states: combines the sources' values into the
   * target's (in that order) and deletes the sources.
   */
  void mergeValues(N target, java.util.Collection<N> sources, Combine<V> combine) throws Exception {
    if (sources == null || sources.isEmpty()) {
      return;
    }
    V merged = null;
    for (N source : sources) {
      byte[] key = keyOf(source);
      byte[] b = getRaw(key);
      if (b != null) {
        deleteRaw(key);
        V v = deserializeValue(b);
        merged = merged == null ? v : combine.apply(merged, v);
      }
    }
    if (merged != null) {
      byte[] targetKey = keyOf(target);
      byte[] t = getRaw(targetKey);
      V result = t == null ? merged : combine.apply(merged, deserializeValue(t));
      putRaw(targetKey, serializeValue(result));
    }
  }

  @Override
  public void clear() {
    try {
      deleteRaw(currentKey());
    } catch (IOException e) {
      throw new FlinkRuntimeException("clearing state " + table.name(), e);
    }
  }

  @Override
  public TypeSerializer<K> getKeySerializer() {
    return backend.getKeySerializer();
  }

  @Override
  public TypeSerializer<N> getNamespaceSerializer() {
    return namespaceSerializer;
  }

  @Override
  public TypeSerializer<V> getValueSerializer() {
    return valueSerializer;
  }

  /** Queryable state was removed from Flink 2; nothing asks for it. */
  @Override
  public byte[] getSerializedValue(
      byte[] serializedKeyAndNamespace,
      TypeSerializer<K> safeKeySerializer,
      TypeSerializer<N> safeNamespaceSerializer,
      TypeSerializer<V> safeValueSerializer) {
    throw new UnsupportedOperationException("queryable state is not supported by the Strata backend");
  }

  /** Only the heap backend's incremental TTL cleanup uses this; Strata cleans up in compaction. */
  @Override
  public StateIncrementalVisitor<K, N, V> getStateIncrementalVisitor(int recommendedMaxNumberOfReturnedRecords) {
    throw new UnsupportedOperationException("the Strata backend cleans up TTL state in compaction");
  }
}
