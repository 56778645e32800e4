package io.strata.flink;

import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * Selects Strata in a Flink job: {@code state.backend.type:
 * io.strata.flink.StrataStateBackendFactory} (with the Strata jar on the classpath).
 */
public final class StrataStateBackendFactory implements StateBackendFactory<StrataStateBackend> {
  @Override
  public StrataStateBackend createFromConfig(ReadableConfig config, ClassLoader classLoader)
      throws IllegalConfigurationException {
    return new StrataStateBackend().configure(config, classLoader);
  }
}
