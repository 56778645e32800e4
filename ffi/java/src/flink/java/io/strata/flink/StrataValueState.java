package io.strata.flink;

import io.strata.Table;
import java.io.IOException;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalValueState;

/** Value state: one value per (key, namespace). */
final class StrataValueState<K, N, V> extends AbstractStrataState<K, N, V>
    implements InternalValueState<K, N, V> {
  private final V defaultValue;

  StrataValueState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> ns,
      TypeSerializer<V> serializer,
      V defaultValue) {
    super(backend, table, ns, serializer);
    this.defaultValue = defaultValue;
  }

  @Override
  public V value() throws IOException {
    byte[] b = getRaw(currentKey());
    if (b == null) {
      return defaultValue == null ? null : valueSerializer.copy(defaultValue);
    }
    return deserializeValue(b);
  }

  @Override
  public void update(V value) throws IOException {
    if (value == null) {
      clear();
      return;
    }
    putRaw(currentKey(), serializeValue(value));
  }
}
