package io.strata;

import java.util.Map;
import java.util.TreeMap;

/**
 * How to open a database: the engine's settings (DESIGN.md, {@code Settings}; any field by
 * name with {@link #set}) and the owned key-group range. Plain Java; nothing native.
 */
public final class Options {
  private final Map<String, String> settings = new TreeMap<>();
  private int keyGroupFirst = -1;
  private int keyGroupLast = -1;
  private boolean readOnly;

  /** One memory budget for the whole engine, in bytes. */
  public Options memoryBudget(long bytes) {
    if (bytes <= 0) {
      throw new IllegalArgumentException("memory budget must be positive: " + bytes);
    }
    return set("memory_budget_bytes", Long.toString(bytes));
  }

  /** Whether writes go to a write-ahead log (off by default: durability from checkpoints). */
  public Options wal(boolean enabled) {
    return set("wal_enabled", Boolean.toString(enabled));
  }

  /** Background compaction threads. */
  public Options compactionThreads(int n) {
    return set("compaction_threads", Integer.toString(n));
  }

  /** Sets one settings field to a JSON value, e.g. {@code set("bloom_bits_per_key", "10")}. */
  public Options set(String field, String jsonValue) {
    settings.put(field, jsonValue);
    return this;
  }

  /** The database owns only key groups {@code first..=last} (recorded in its checkpoints). */
  public Options keyGroups(int first, int last) {
    if (first < 0 || last < first || last > 65535) {
      throw new IllegalArgumentException("key groups " + first + ".." + last);
    }
    keyGroupFirst = first;
    keyGroupLast = last;
    return this;
  }

  /** Opens the database read-only. */
  public Options readOnly(boolean readOnly) {
    this.readOnly = readOnly;
    return this;
  }

  int keyGroupFirst() {
    return keyGroupFirst;
  }

  int keyGroupLast() {
    return keyGroupLast;
  }

  boolean readOnly() {
    return readOnly;
  }

  /** The settings as a JSON object; fields not set keep the engine's defaults. */
  public String settingsJson() {
    StringBuilder sb = new StringBuilder("{");
    for (Map.Entry<String, String> e : settings.entrySet()) {
      if (sb.length() > 1) {
        sb.append(',');
      }
      sb.append('"').append(e.getKey()).append("\":").append(e.getValue());
    }
    return sb.append('}').toString();
  }
}
