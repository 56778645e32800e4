package io.strata.flink;

import io.strata.Table;
import java.util.Collection;
import org.apache.flink.api.common.functions.ReduceFunction;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalReducingState;

/** Reducing state: the reduced value per (key, namespace), read-modify-written on add. */
final class StrataReducingState<K, N, V> extends AbstractStrataState<K, N, V>
    implements InternalReducingState<K, N, V> {
  private final ReduceFunction<V> reduce;

  StrataReducingState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> ns,
      TypeSerializer<V> serializer,
      ReduceFunction<V> reduce) {
    super(backend, table, ns, serializer);
    this.reduce = reduce;
  }

  @Override
  public V get() throws Exception {
    return getInternal();
  }

  @Override
  public V getInternal() throws Exception {
    byte[] b = getRaw(currentKey());
    return b == null ? null : deserializeValue(b);
  }

  @Override
  public void add(V value) throws Exception {
    byte[] key = currentKey();
    byte[] b = getRaw(key);
    V next = b == null ? value : reduce.reduce(deserializeValue(b), value);
    putRaw(key, serializeValue(next));
  }

  @Override
  public void updateInternal(V value) throws Exception {
    putOrClear(value);
  }

  @Override
  public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
    mergeValues(target, sources, reduce::reduce);
  }
}
