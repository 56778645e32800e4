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
  public void updateInternal(ACC value) throws Exception {
    putOrClear(value);
  }

  @Override
  public void mergeNamespaces(N target, Collection<N> sources) throws Exception {
    mergeValues(target, sources, function::merge);
  }
}
