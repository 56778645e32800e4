package io.strata.flink;

import io.strata.StrataException;
import io.strata.Table;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.ListSerializer;
import org.apache.flink.runtime.state.internal.InternalListState;
import org.apache.flink.util.Preconditions;

/**
 * List state: elements stored as {@code (length: int, serialized element)} and appended with
 * the table's append merge, so {@code add} never reads.
 */
final class StrataListState<K, N, V> extends AbstractStrataState<K, N, List<V>>
    implements InternalListState<K, N, V> {
  private final TypeSerializer<V> elementSerializer;

  StrataListState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> ns,
      TypeSerializer<List<V>> serializer) {
    super(backend, table, ns, serializer);
    this.elementSerializer = ((ListSerializer<V>) valueSerializer).getElementSerializer();
  }

  private void frame(V element) throws IOException {
    Preconditions.checkNotNull(element, "You cannot add null to a ListState.");
    int at = out.length();
    out.writeInt(0);
    elementSerializer.serialize(element, out);
    int len = out.length() - at - 4;
    byte[] buf = out.getSharedBuffer();
    buf[at] = (byte) (len >>> 24);
    buf[at + 1] = (byte) (len >>> 16);
    buf[at + 2] = (byte) (len >>> 8);
    buf[at + 3] = (byte) len;
  }

  private byte[] frameAll(Collection<V> values) throws IOException {
    out.clear();
    for (V v : values) {
      frame(v);
    }
    return out.getCopyOfBuffer();
  }

  private List<V> parse(byte[] b) throws IOException {
    if (b == null) {
      return null;
    }
    List<V> list = new ArrayList<>();
    in.setBuffer(b);
    while (in.available() > 0) {
      int len = in.readInt();
      int start = in.getPosition();
      list.add(elementSerializer.deserialize(in));
      if (in.getPosition() != start + len) {
        throw new IOException("list element of " + len + " bytes read as " + (in.getPosition() - start));
      }
    }
    return list;
  }

  @Override
  public Iterable<V> get() throws IOException {
    return getInternal();
  }

  @Override
  public List<V> getInternal() throws IOException {
    return parse(getRaw(currentKey()));
  }

  @Override
  public void add(V value) throws IOException {
    out.clear();
    frame(value);
    append(currentKey(), out.getCopyOfBuffer());
  }

  private void append(byte[] key, byte[] framed) throws IOException {
    try {
      db.merge(table, key, framed);
    } catch (StrataException e) {
      throw new IOException(e);
    }
  }

  @Override
  public void addAll(List<V> values) throws IOException {
    Preconditions.checkNotNull(values, "List of values to add cannot be null.");
    if (!values.isEmpty()) {
      append(currentKey(), frameAll(values));
    }
  }

  @Override
  public void update(List<V> values) throws IOException {
    Preconditions.checkNotNull(values, "List of values to add cannot be null.");
    if (values.isEmpty()) {
      clear();
    } else {
      putRaw(currentKey(), frameAll(values));
    }
  }

  @Override
  public void updateInternal(List<V> values) throws IOException {
    update(values);
  }

  /** Session windows: appends each source's elements to the target and deletes the source. */
  @Override
  public void mergeNamespaces(N target, Collection<N> sources) throws IOException {
    if (sources == null || sources.isEmpty()) {
      return;
    }
    byte[] targetKey = keyOf(target);
    for (N source : sources) {
      byte[] key = keyOf(source);
      byte[] b = getRaw(key);
      if (b != null) {
        deleteRaw(key);
        append(targetKey, b);
      }
    }
  }
}
