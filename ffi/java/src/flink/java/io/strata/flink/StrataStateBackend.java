package io.strata.flink;

import java.io.File;
import java.io.IOException;
import java.util.Collection;
import java.util.UUID;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.execution.Environment;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.AbstractManagedMemoryStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.DefaultOperatorStateBackendBuilder;
import org.apache.flink.runtime.state.OperatorStateBackend;

/**
 * Flink's keyed state in Strata: one Strata database per keyed operator subtask, sized by the
 * slot's managed memory (as RocksDB's is), incremental checkpoints whose table files become
 * Flink shared state, restore and rescaling by key-group range, state TTL cleaned up in
 * compaction, and timers stored in Strata. Operator (non-keyed) state uses Flink's default
 * backend, as the built-in backends do.
 */
public class StrataStateBackend extends AbstractManagedMemoryStateBackend
    implements ConfigurableStateBackend {
  private static final long serialVersionUID = 1L;

  /** Where the databases live (default: the TaskManager's temporary directories). */
  public static final ConfigOption<String> LOCAL_DIR =
      ConfigOptions.key("state.backend.strata.local-dir")
          .stringType()
          .noDefaultValue()
          .withDescription("Directory for Strata's local files (default: the TaskManager's tmp dirs).");

  /** Background compaction threads per database. */
  public static final ConfigOption<Integer> COMPACTION_THREADS =
      ConfigOptions.key("state.backend.strata.compaction-threads")
          .intType()
          .defaultValue(1)
          .withDescription("Background compaction threads per Strata database.");

  /** A fixed memory budget per keyed operator instead of the slot's managed memory. */
  public static final ConfigOption<Long> FIXED_MEMORY =
      ConfigOptions.key("state.backend.strata.memory.fixed-per-operator")
          .longType()
          .noDefaultValue()
          .withDescription("Bytes of memory per keyed operator (default: its managed memory).");

  private String localDir;
  private int compactionThreads = 1;
  private Long fixedMemory;

  @Override
  public String getName() {
    return "strata";
  }

  @Override
  public StrataStateBackend configure(ReadableConfig config, ClassLoader classLoader)
      throws IllegalConfigurationException {
    StrataStateBackend b = new StrataStateBackend();
    b.localDir = config.getOptional(LOCAL_DIR).orElse(localDir);
    b.compactionThreads = config.get(COMPACTION_THREADS);
    if (b.compactionThreads < 1) {
      throw new IllegalConfigurationException(COMPACTION_THREADS.key() + " must be at least 1");
    }
    b.fixedMemory = config.getOptional(FIXED_MEMORY).orElse(fixedMemory);
    if (b.fixedMemory != null && b.fixedMemory <= 0) {
      throw new IllegalConfigurationException(FIXED_MEMORY.key() + " must be positive");
    }
    return b;
  }

  @Override
  public <K> AbstractKeyedStateBackend<K> createKeyedStateBackend(
      KeyedStateBackendParameters<K> p) throws IOException {
    Environment env = p.getEnv();
    File base;
    if (localDir != null) {
      base = new File(localDir);
    } else {
      File[] dirs = env.getIOManager().getSpillingDirectories();
      base = dirs[Math.floorMod(p.getOperatorIdentifier().hashCode(), dirs.length)];
    }
    String name =
        "strata-"
            + p.getJobID()
            + "-"
            + p.getOperatorIdentifier().replaceAll("[^A-Za-z0-9_.-]", "_")
            + "-"
            + UUID.randomUUID();
    try {
      return StrataKeyedStateBackend.build(
          p, new File(base, name).toPath(), fixedMemory, compactionThreads);
    } catch (IOException e) {
      throw e;
    } catch (Exception e) {
      throw new IOException("creating the Strata keyed state backend: " + e, e);
    }
  }

  @Override
  public OperatorStateBackend createOperatorStateBackend(OperatorStateBackendParameters p)
      throws Exception {
    Environment env = p.getEnv();
    Collection<org.apache.flink.runtime.state.OperatorStateHandle> handles = p.getStateHandles();
    return new DefaultOperatorStateBackendBuilder(
            env.getUserCodeClassLoader().asClassLoader(),
            env.getExecutionConfig(),
            false,
            handles,
            p.getCancelStreamRegistry())
        .build();
  }

  /**
   * Native savepoints (the same files and metadata as checkpoints, self-contained) work;
   * canonical savepoints (a backend-independent key/value stream) are not written yet.
   */
  @Override
  public boolean supportsSavepointFormat(SavepointFormatType formatType) {
    return formatType == SavepointFormatType.NATIVE;
  }

  /** Restored files are read in place and never modified or deleted by the new job. */
  @Override
  public boolean supportsNoClaimRestoreMode() {
    return true;
  }
}
