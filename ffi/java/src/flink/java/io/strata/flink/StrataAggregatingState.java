package io.strata.flink;

import io.strata.Table;
import java.util.Collection;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalAggregatingState;

/** Aggregating state: the accumulator per (key, namespace), read-modify-written on add. */
final class StrataAggregatingState<K, N, IN, ACC, OUT> extends AbstractStrataState<K, N, ACC>
    implements InternalAggregatingState<K, N, IN, ACC, OUT> {
  private final AggregateFunction<IN, ACC, OUT> function;

  StrataAggregatingState(
      StrataKeyedStateBackend<K> backend,
      Table table,
      TypeSerializer<N> ns,
      TypeSerializer<ACC> serializer,
      AggregateFunction<IN, ACC, OUT> function) {
    super(backend, table, ns, serializer);
    this.function = function;
  }

  @Override
  public OUT get() throws Exception {
    ACC acc = getInternal();
    return acc == null ? null : function.getResult(acc);
  }

  @Override
  public ACC getInternal() throws Exception {
    byte[] b = getRaw(currentKey());
    return b == null ? null : deserializeValue(b);
  }

  @Override
  public void add(IN value) throws Exception {
    byte[] key = currentKey();
    byte[] b = getRaw(key);
    ACC acc = b == null ? function.createAccumulator() : deserializeValue(b);
    putRaw(key, serializeValue(function.add(value, acc)));
  }

  @Override
  public void updateInternal(ACC acc) throws Exception {
    if (acc == null) {
      clear();
    } else {
      putRaw(currentKey(), serializeValue(acc));
    }
  }

  @Override
  public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
    if (sources == null || sources.isEmpty()) {
      return;
    }
    ACC merged = null;
    for (N source : sources) {
      byte[] key = keyOf(source);
      byte[] b = getRaw(key);
      if (b != null) {
        deleteRaw(key);
        ACC a = deserializeValue(b);
        merged = merged == null ? a : function.merge(merged, a);
      }
    }
    if (merged != null) {
      byte[] targetKey = keyOf(target);
      byte[] t = getRaw(targetKey);
      ACC result = t == null ? merged : function.merge(merged, deserializeValue(t));
      putRaw(targetKey, serializeValue(result));
    }
  }
}
