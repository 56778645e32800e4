package io.strata.flink;

import io.strata.StrataException;
import io.strata.StrataIterator;
import io.strata.Table;
import io.strata.WriteBatch;
import java.io.IOException;
import java.util.AbstractMap;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.MapSerializer;
import org.apache.flink.runtime.state.internal.InternalMapState;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * Map state: one table entry per user key, keyed (key group, key, namespace, user key);
 * values carry a null flag byte. Iteration is a prefix scan over (key group, key,
 * namespace), at a snapshot taken when the iterator is created.
 */
final class StrataMapState<K, N, UK, UV> extends AbstractStrataState<K, N, Map<UK, UV>>
    implements InternalMapState<K, N, UK, UV> {
  private final TypeSerializer<UK> userKeySerializer;
  private final TypeSerializer<UV> userValueSerializer;

  StrataMapState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> ns,
      TypeSerializer<Map<UK, UV>> serializer) {
    super(backend, table, ns, serializer);
    MapSerializer<UK, UV> m = (MapSerializer<UK, UV>) valueSerializer;
    this.userKeySerializer = m.getKeySerializer();
    this.userValueSerializer = m.getValueSerializer();
  }

  private byte[] userKey(UK key) throws IOException {
    return backend.keyBuilder.buildCompositeKeyNamesSpaceUserKey(
        currentNamespace, namespaceSerializer, key, userKeySerializer);
  }

  private byte[] encode(UV value) throws IOException {
    out.clear();
    out.writeBoolean(value == null);
    if (value != null) {
      userValueSerializer.serialize(value, out);
    }
    return out.getCopyOfBuffer();
  }

  private UV decode(byte[] b) throws IOException {
    in.setBuffer(b);
    return in.readBoolean() ? null : userValueSerializer.deserialize(in);
  }

  @Override
  public UV get(UK key) throws IOException {
    byte[] b = getRaw(userKey(key));
    return b == null ? null : decode(b);
  }

  @Override
  public void put(UK key, UV value) throws IOException {
    putRaw(userKey(key), encode(value));
  }

  @Override
  public void putAll(Map<UK, UV> map) throws IOException {
    if (map == null || map.isEmpty()) {
      return;
    }
    try (WriteBatch batch = new WriteBatch()) {
      for (Map.Entry<UK, UV> e : map.entrySet()) {
        batch.put(table, userKey(e.getKey()), encode(e.getValue()));
      }
      db.write(batch);
    } catch (StrataException e) {
      throw new IOException(e);
    }
  }

  @Override
  public void remove(UK key) throws IOException {
    deleteRaw(userKey(key));
  }

  @Override
  public boolean contains(UK key) throws IOException {
    return getRaw(userKey(key)) != null;
  }

  @Override
  public Iterable<Map.Entry<UK, UV>> entries() {
    return this::iterator;
  }

  @Override
  public Iterable<UK> keys() {
    return () -> mapped(true);
  }

  @Override
  public Iterable<UV> values() {
    return () -> mapped(false);
  }

  @SuppressWarnings("unchecked")
  private <T> Iterator<T> mapped(boolean keys) {
    Iterator<Map.Entry<UK, UV>> it = iterator();
    return new Iterator<>() {
      @Override
      public boolean hasNext() {
        return it.hasNext();
      }

      @Override
      public T next() {
        Map.Entry<UK, UV> e = it.next();
        return (T) (keys ? e.getKey() : e.getValue());
      }

      @Override
      public void remove() {
        it.remove();
      }
    };
  }

  @Override
  public boolean isEmpty() {
    try (StrataIterator it = db.prefix(table, currentKey())) {
      return !it.next();
    } catch (StrataException e) {
      throw new FlinkRuntimeException(e);
    }
  }

  @Override
  public void clear() {
    byte[] prefix = currentKey();
    try (StrataIterator it = db.prefix(table, prefix);
        WriteBatch batch = new WriteBatch()) {
      while (it.next()) {
        batch.delete(table, it.key());
      }
      db.write(batch);
    } catch (StrataException e) {
      throw new FlinkRuntimeException("clearing map state " + table.name(), e);
    }
  }

  @Override
  public Iterator<Map.Entry<UK, UV>> iterator() {
    byte[] prefix = currentKey();
    StrataIterator it;
    try {
      it = db.prefix(table, prefix);
    } catch (StrataException e) {
      throw new FlinkRuntimeException(e);
    }
    return new Iterator<>() {
      private Map.Entry<UK, UV> next;
      private byte[] nextKey;
      private byte[] lastKey;
      private boolean done;

      @Override
      public boolean hasNext() {
        if (next != null) {
          return true;
        }
        if (done) {
          return false;
        }
        try {
          if (!it.next()) {
            done = true;
            it.close();
            return false;
          }
          nextKey = it.key();
          in.setBuffer(nextKey, prefix.length, nextKey.length - prefix.length);
          UK k = userKeySerializer.deserialize(in);
          next = new AbstractMap.SimpleImmutableEntry<>(k, decode(it.value()));
          return true;
        } catch (StrataException | IOException e) {
          throw new FlinkRuntimeException("iterating map state " + table.name(), e);
        }
      }

      @Override
      public Map.Entry<UK, UV> next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        Map.Entry<UK, UV> e = next;
        lastKey = nextKey;
        next = null;
        return e;
      }

      @Override
      public void remove() {
        if (lastKey == null) {
          throw new IllegalStateException("next() was not called");
        }
        try {
          deleteRaw(lastKey);
        } catch (IOException e) {
          throw new FlinkRuntimeException(e);
        }
        lastKey = null;
      }
    };
  }
}
