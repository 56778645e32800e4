package io.strata.flink;

import io.strata.CheckpointInfo;
import io.strata.CheckpointStore;
import io.strata.Options;
import io.strata.StrataDb;
import io.strata.StrataException;
import io.strata.StrataIterator;
import io.strata.Table;
import io.strata.TableOptions;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RunnableFuture;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import org.apache.flink.api.common.state.State;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputViewStreamWrapper;
import org.apache.flink.core.memory.DataOutputViewStreamWrapper;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SnapshotType;
import org.apache.flink.runtime.memory.MemoryManager;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStateOutputStream;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.CheckpointedStateScope;
import org.apache.flink.runtime.state.CompositeKeySerializationUtils;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.IncrementalRemoteKeyedStateHandle;
import org.apache.flink.runtime.state.InternalKeyContextImpl;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedBackendSerializationProxy;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PlaceholderStreamStateHandle;
import org.apache.flink.runtime.state.RegisteredKeyValueStateBackendMetaInfo;
import org.apache.flink.runtime.state.SavepointResources;
import org.apache.flink.runtime.state.SerializedCompositeKeyBuilder;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.StateBackend.KeyedStateBackendParameters;
import org.apache.flink.runtime.state.StateSnapshotTransformer.StateSnapshotTransformFactory;
import org.apache.flink.runtime.state.StreamStateHandle;
import org.apache.flink.runtime.state.UncompressedStreamCompressionDecorator;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.Keyed;
import org.apache.flink.runtime.state.PriorityComparable;
import org.apache.flink.runtime.state.metainfo.StateMetaInfoSnapshot;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.runtime.state.metrics.SizeTrackingStateConfig;
import org.apache.flink.util.StateMigrationException;

/**
 * The keyed state of one operator subtask in one Strata database.
 *
 * <p>Layout: one table per state, keys in Flink's serialized composite layout (key-group
 * prefix of 1 or 2 bytes, key, namespace, and for map state the user key), so key groups are
 * contiguous and the engine's key-group field (offset 0) serves rescaling. Values: value,
 * reducing and aggregating state hold the serialized value; map state a null flag and the
 * value; list state length-prefixed elements appended with the engine's append merge. Timers
 * live in one table per timer service ({@link StrataTimerSet}).
 *
 * <p>Snapshots: the synchronous part takes an in-place engine checkpoint (a flush and a
 * manifest pinning the files); the asynchronous part uploads every table file not in the
 * last completed checkpoint as Flink shared state (the others become placeholders the shared
 * state registry resolves), then a metadata stream: {@link #META_MAGIC}, version, Flink's
 * {@link KeyedBackendSerializationProxy} (key and state serializers), the engine manifest
 * and the files' local names. Restore downloads the files of every handle that overlaps the
 * key-group range, rehomes each manifest onto them and restores one database from all of
 * them, restricted to the range.
 */
public class StrataKeyedStateBackend<K> extends AbstractKeyedStateBackend<K> {
  /** "STRF": the metadata stream of a Strata snapshot. */
  static final int META_MAGIC = 0x53545246;
  static final int META_VERSION = 1;

  final StrataDb db;
  final SerializedCompositeKeyBuilder<K> keyBuilder;
  final int keyGroupPrefixBytes;
  private final Path instanceDir;
  private final UUID backendId = UUID.randomUUID();
  private final Map<String, Registered> states = new HashMap<>();
  private final Map<String, StateMetaInfoSnapshot> restoredMeta;
  private final Map<String, KeyGroupedInternalPriorityQueue<?>> timerQueues = new HashMap<>();
  private final ReentrantReadWriteLock dbLock = new ReentrantReadWriteLock();
  private final Object uploads = new Object();
  /** Files (by local path) of checkpoints in flight, with their uploaded handles. */
  private final TreeMap<Long, Map<String, StreamStateHandle>> pendingUploads = new TreeMap<>();
  /** Files of the last completed checkpoint (or the restored one): reused as placeholders. */
  private Map<String, StreamStateHandle> confirmed;
  private final MemoryManager memoryManager;
  private final long reservedMemory;
  private boolean disposed;
  /** Streams of snapshots in flight; closed (cancelling them) on dispose. */
  private final org.apache.flink.core.fs.CloseableRegistry snapshotStreams =
      new org.apache.flink.core.fs.CloseableRegistry();

  /** One registered state: its table, meta info and state object. */
  static final class Registered {
    final Table table;
    RegisteredKeyValueStateBackendMetaInfo<?, ?> meta;
    State state;

    Registered(Table table, RegisteredKeyValueStateBackendMetaInfo<?, ?> meta) {
      this.table = table;
      this.meta = meta;
    }
  }

  private StrataKeyedStateBackend(
      KeyedStateBackendParameters<K> p,
      StrataDb db,
      Path instanceDir,
      Map<String, StateMetaInfoSnapshot> restoredMeta,
      Map<String, StreamStateHandle> restoredFiles,
      MemoryManager memoryManager,
      long reservedMemory) {
    super(
        p.getKvStateRegistry(),
        p.getKeySerializer(),
        p.getEnv().getUserCodeClassLoader().asClassLoader(),
        p.getEnv().getExecutionConfig(),
        p.getTtlTimeProvider(),
        LatencyTrackingStateConfig.disabled(),
        SizeTrackingStateConfig.disabled(),
        p.getCancelStreamRegistry(),
        UncompressedStreamCompressionDecorator.INSTANCE,
        new InternalKeyContextImpl<>(p.getKeyGroupRange(), p.getNumberOfKeyGroups()));
    this.db = db;
    this.instanceDir = instanceDir;
    this.keyGroupPrefixBytes =
        CompositeKeySerializationUtils.computeRequiredBytesInKeyGroupPrefix(
            p.getNumberOfKeyGroups());
    this.keyBuilder = new SerializedCompositeKeyBuilder<>(keySerializer, keyGroupPrefixBytes, 32);
    this.restoredMeta = restoredMeta;
    this.confirmed = restoredFiles;
    this.memoryManager = memoryManager;
    this.reservedMemory = reservedMemory;
  }

  /** Opens (or restores) the database for {@code p} in {@code instanceDir}. */
  static <K> StrataKeyedStateBackend<K> build(
      KeyedStateBackendParameters<K> p, Path instanceDir, Long fixedMemory, int compactionThreads)
      throws Exception {
    MemoryManager mm = p.getEnv().getMemoryManager();
    long budget;
    long reserved = 0;
    if (fixedMemory != null) {
      budget = fixedMemory;
    } else {
      budget = mm.computeMemorySize(p.getManagedMemoryFraction());
      if (budget <= 0) {
        throw new IllegalStateException(
            "no managed memory for the Strata backend (fraction "
                + p.getManagedMemoryFraction()
                + "); give the slot managed memory or set "
                + StrataStateBackend.FIXED_MEMORY.key());
      }
    }
    KeyGroupRange range = p.getKeyGroupRange();
    Options options =
        new Options()
            .memoryBudget(budget)
            .wal(false)
            .compactionThreads(compactionThreads)
            .set("flush_on_close", "false")
            .keyGroups(range.getStartKeyGroup(), range.getEndKeyGroup());
    Map<String, StateMetaInfoSnapshot> meta = new HashMap<>();
    Map<String, StreamStateHandle> files = new HashMap<>();
    StrataDb db = null;
    try {
      Files.createDirectories(instanceDir);
      Path dbDir = instanceDir.resolve("db");
      List<KeyedStateHandle> handles = new ArrayList<>();
      for (KeyedStateHandle h : p.getStateHandles()) {
        if (h != null && h.getKeyGroupRange().getIntersection(range).getNumberOfKeyGroups() > 0) {
          handles.add(h);
        }
      }
      if (handles.isEmpty()) {
        db = StrataDb.open(dbDir.toString(), options);
      } else {
        db =
            restore(
                handles,
                instanceDir.resolve("restore"),
                dbDir,
                options,
                p.getEnv().getUserCodeClassLoader().asClassLoader(),
                meta,
                files);
      }
      return new StrataKeyedStateBackend<>(p, db, instanceDir, meta, files, mm, reserved);
    } catch (Exception e) {
      if (db != null) {
        db.close();
      }
      if (reserved > 0) {
        mm.releaseMemory(instanceDir, reserved);
      }
      deleteTree(instanceDir);
      throw e;
    }
  }

  private static StrataDb restore(
      List<KeyedStateHandle> handles,
      Path restoreDir,
      Path dbDir,
      Options options,
      ClassLoader cl,
      Map<String, StateMetaInfoSnapshot> meta,
      Map<String, StreamStateHandle> files)
      throws Exception {
    List<CheckpointStore> stores = new ArrayList<>();
    long[] ids = new long[handles.size()];
    try {
      for (int i = 0; i < handles.size(); i++) {
        KeyedStateHandle h = handles.get(i);
        if (!(h instanceof IncrementalRemoteKeyedStateHandle)) {
          throw new IllegalStateException(
              "the Strata backend restores only its own checkpoints and native savepoints;"
                  + " got "
                  + h.getClass().getName()
                  + " (a canonical savepoint or another backend's snapshot)");
        }
        IncrementalRemoteKeyedStateHandle inc = (IncrementalRemoteKeyedStateHandle) h;
        Path dir = restoreDir.resolve("h" + i);
        Files.createDirectories(dir.resolve("files"));
        byte[] manifest;
        String[] names;
        try (InputStream in = inc.getMetaDataStateHandle().openInputStream()) {
          DataInputViewStreamWrapper view = new DataInputViewStreamWrapper(in);
          int magic = view.readInt();
          int version = view.readInt();
          if (magic != META_MAGIC || version != META_VERSION) {
            throw new IOException(
                String.format(
                    "not a Strata snapshot (magic %08x, version %d) in %s",
                    magic, version, inc.getMetaDataStateHandle()));
          }
          KeyedBackendSerializationProxy<Object> proxy = new KeyedBackendSerializationProxy<>(cl);
          proxy.read(view);
          for (StateMetaInfoSnapshot s : proxy.getStateMetaInfoSnapshots()) {
            meta.put(s.getName(), s);
          }
          manifest = new byte[view.readInt()];
          view.readFully(manifest);
          names = new String[view.readInt()];
          for (int j = 0; j < names.length; j++) {
            names[j] = view.readUTF();
          }
        }
        Map<String, StreamStateHandle> byName = new HashMap<>();
        java.util.Set<String> sharedNames = new java.util.HashSet<>();
        for (HandleAndLocalPath hp : inc.getSharedState()) {
          byName.put(hp.getLocalPath(), hp.getHandle());
          sharedNames.add(hp.getLocalPath());
        }
        for (HandleAndLocalPath hp : inc.getPrivateState()) {
          byName.put(hp.getLocalPath(), hp.getHandle());
        }
        String[] paths = new String[names.length];
        for (int j = 0; j < names.length; j++) {
          StreamStateHandle fh = byName.get(names[j]);
          if (fh == null) {
            throw new IOException("the snapshot's metadata names " + names[j] + ", its handle lists no such file");
          }
          paths[j] = "files/" + names[j];
          Path local = dir.resolve(paths[j]);
          try (InputStream in = fh.openInputStream()) {
            Files.copy(in, local, StandardCopyOption.REPLACE_EXISTING);
          }
          if (sharedNames.contains(names[j])) {
            files.put(local.toRealPath().toString(), fh);
          }
        }
        CheckpointStore store = CheckpointStore.local(dir.toString(), "checkpoints");
        stores.add(store);
        ids[i] = StrataDb.rehomeCheckpoint(store, manifest, paths);
      }
      return StrataDb.restore(dbDir.toString(), options, stores.toArray(new CheckpointStore[0]), ids);
    } finally {
      for (CheckpointStore s : stores) {
        s.close();
      }
    }
  }

  // ---- key context ----------------------------------------------------------------------

  @Override
  public void setCurrentKey(K newKey) {
    super.setCurrentKey(newKey);
    keyBuilder.setKeyAndKeyGroup(getCurrentKey(), getCurrentKeyGroupIndex());
  }

  @Override
  public void setCurrentKeyAndKeyGroup(K newKey, int keyGroupIndex) {
    super.setCurrentKeyAndKeyGroup(newKey, keyGroupIndex);
    keyBuilder.setKeyAndKeyGroup(getCurrentKey(), getCurrentKeyGroupIndex());
  }

  // ---- states ---------------------------------------------------------------------------

  @Override
  @SuppressWarnings("unchecked")
  public <N, SV, SEV, S extends State, IS extends S> IS createOrUpdateInternalState(
      TypeSerializer<N> namespaceSerializer,
      StateDescriptor<S, SV> stateDesc,
      StateSnapshotTransformFactory<SEV> snapshotTransformFactory)
      throws Exception {
    String name = stateDesc.getName();
    Registered r = states.get(name);
    StateMetaInfoSnapshot restored = r == null ? restoredMeta.get(name) : null;
    if (r == null && restored == null) {
      r =
          register(
              stateDesc,
              namespaceSerializer,
              new RegisteredKeyValueStateBackendMetaInfo<>(
                  stateDesc.getType(), name, namespaceSerializer, stateDesc.getSerializer()));
    } else {
      // An existing or restored state: the new serializers must read what is stored.
      RegisteredKeyValueStateBackendMetaInfo<N, SV> meta =
          r != null
              ? (RegisteredKeyValueStateBackendMetaInfo<N, SV>) r.meta
              : new RegisteredKeyValueStateBackendMetaInfo<>(restored);
      meta.checkStateMetaInfo(stateDesc);
      checkCompatible(name, meta.updateNamespaceSerializer(namespaceSerializer));
      checkCompatible(name, meta.updateStateSerializer(stateDesc.getSerializer()));
      if (r == null) {
        r = register(stateDesc, namespaceSerializer, meta);
      }
    }
    StateTtlConfig ttl = stateDesc.getTtlConfig();
    if (ttl.isEnabled() && ttl.getCleanupStrategies().isCleanupInBackground()) {
      db.setTtlCompactionFilter(r.table, ttlLayout(stateDesc.getType()), ttl.getTimeToLive().toMillis());
    }
    r.state = createState(r.table, namespaceSerializer, stateDesc);
    return (IS) r.state;
  }

  private Registered register(
      StateDescriptor<?, ?> d, TypeSerializer<?> ns, RegisteredKeyValueStateBackendMetaInfo<?, ?> meta)
      throws StrataException {
    Registered r = new Registered(db.createTable(d.getName(), tableOptions(d, ns)), meta);
    states.put(d.getName(), r);
    return r;
  }

  private static void checkCompatible(String name, TypeSerializerSchemaCompatibility<?> c)
      throws StateMigrationException {
    if (c.isIncompatible()) {
      throw new StateMigrationException("the new serializer of state " + name + " is incompatible");
    }
    if (c.isCompatibleAfterMigration()) {
      throw new StateMigrationException(
          "state " + name + " needs migration to its new serializer; the Strata backend does not migrate state yet");
    }
  }

  private TableOptions tableOptions(StateDescriptor<?, ?> d, TypeSerializer<?> ns) {
    TableOptions o = new TableOptions().keyGroupField(0, keyGroupPrefixBytes);
    if (d.getType() == StateDescriptor.Type.LIST) {
      o.merge(TableOptions.Merge.APPEND);
    }
    if (d.getType() == StateDescriptor.Type.MAP
        && keySerializer.getLength() > 0
        && ns.getLength() > 0) {
      // Fixed-length key and namespace: a map's entries share a fixed prefix.
      o.prefixLength(keyGroupPrefixBytes + keySerializer.getLength() + ns.getLength());
    }
    return o;
  }

  private static StrataDb.TtlLayout ttlLayout(StateDescriptor.Type t) {
    switch (t) {
      case LIST:
        return StrataDb.TtlLayout.LIST;
      case MAP:
        return StrataDb.TtlLayout.MAP;
      default:
        return StrataDb.TtlLayout.VALUE;
    }
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private <N, SV> State createState(Table t, TypeSerializer<N> ns, StateDescriptor<?, SV> d) {
    switch (d.getType()) {
      case VALUE:
        return new StrataValueState<>(this, t, ns, d.getSerializer(), d.getDefaultValue());
      case LIST:
        return new StrataListState<>(this, t, ns, (TypeSerializer) d.getSerializer());
      case MAP:
        return new StrataMapState<>(this, t, ns, (TypeSerializer) d.getSerializer());
      case REDUCING:
        return new StrataReducingState<>(
            this, t, ns, d.getSerializer(),
            ((org.apache.flink.api.common.state.ReducingStateDescriptor<SV>) d).getReduceFunction());
      case AGGREGATING:
        return new StrataAggregatingState<>(
            this, t, ns, d.getSerializer(),
            ((org.apache.flink.api.common.state.AggregatingStateDescriptor) d).getAggregateFunction());
      default:
        throw new UnsupportedOperationException("state type " + d.getType());
    }
  }

  // ---- keys -----------------------------------------------------------------------------

  @Override
  public <N> Stream<K> getKeys(String state, N namespace) {
    return keysAndNamespaces(state)
        .filter(t -> t.f1.equals(namespace))
        .map(t -> t.f0);
  }

  @Override
  public <N> Stream<K> getKeys(List<String> states, N namespace) {
    return states.stream().flatMap(s -> getKeys(s, namespace)).distinct();
  }

  @Override
  public <N> Stream<Tuple2<K, N>> getKeysAndNamespaces(String state) {
    return keysAndNamespaces(state);
  }

  /** Every (key, namespace) of a state, once each, lazily, in key order. */
  @SuppressWarnings("unchecked")
  private <N> Stream<Tuple2<K, N>> keysAndNamespaces(String state) {
    Registered r = states.get(state);
    if (r == null) {
      return Stream.empty();
    }
    TypeSerializer<N> ns = (TypeSerializer<N>) r.meta.getNamespaceSerializer();
    boolean ambiguous = CompositeKeySerializationUtils.isAmbiguousKeyPossible(keySerializer, ns);
    StrataIterator it;
    try {
      it = db.range(r.table, new byte[0], null);
    } catch (StrataException e) {
      throw new IllegalStateException(e);
    }
    Iterator<Tuple2<K, N>> keys =
        new Iterator<>() {
          Tuple2<K, N> next;
          Tuple2<K, N> last;

          @Override
          public boolean hasNext() {
            try {
              while (next == null && it.next()) {
                DataInputDeserializer in = new DataInputDeserializer(it.key());
                in.skipBytesToRead(keyGroupPrefixBytes);
                K k = CompositeKeySerializationUtils.readKey(keySerializer, in, ambiguous);
                N n = CompositeKeySerializationUtils.readNamespace(ns, in, ambiguous);
                Tuple2<K, N> t = Tuple2.of(k, n);
                if (!t.equals(last)) {
                  next = t;
                  last = t;
                }
              }
              return next != null;
            } catch (StrataException | IOException e) {
              throw new IllegalStateException("iterating the keys of " + state, e);
            }
          }

          @Override
          public Tuple2<K, N> next() {
            if (!hasNext()) {
              throw new NoSuchElementException();
            }
            Tuple2<K, N> t = next;
            next = null;
            return t;
          }
        };
    return StreamSupport.stream(Spliterators.spliteratorUnknownSize(keys, Spliterator.ORDERED), false)
        .onClose(() -> closeQuietly(it));
  }

  private static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception e) {
      // A close that fails has nothing left to release.
    }
  }

  @Override
  public int numKeyValueStateEntries() {
    int n = 0;
    for (Registered r : states.values()) {
      try (StrataIterator it = db.range(r.table, new byte[0], null)) {
        while (it.next()) {
          n++;
        }
      } catch (StrataException e) {
        throw new IllegalStateException(e);
      }
    }
    return n;
  }

  // ---- timers ---------------------------------------------------------------------------

  @Override
  @SuppressWarnings("unchecked")
  public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
      KeyGroupedInternalPriorityQueue<T> create(String stateName, TypeSerializer<T> serializer) {
    return (KeyGroupedInternalPriorityQueue<T>)
        timerQueues.computeIfAbsent(
            stateName,
            name -> {
              Table t;
              try {
                // The prefix length groups a key group's timers in the hot tier, so the
                // sets' prefix scans read one shard.
                t =
                    db.createTable(
                        "_timers_" + name,
                        new TableOptions().keyGroupField(0, keyGroupPrefixBytes).prefixLength(keyGroupPrefixBytes));
              } catch (StrataException e) {
                throw new IllegalStateException("creating the timer table of " + name, e);
              }
              return StrataTimerSet.queue(
                  db, t, keyGroupRange, numberOfKeyGroups, keyGroupPrefixBytes, serializer, StrataTimerSet.CACHE_LIMIT);
            });
  }

  // ---- snapshots ------------------------------------------------------------------------

  @Override
  public RunnableFuture<SnapshotResult<KeyedStateHandle>> snapshot(
      long checkpointId,
      long timestamp,
      CheckpointStreamFactory streamFactory,
      CheckpointOptions checkpointOptions)
      throws Exception {
    SnapshotType.SharingFilesStrategy sharing =
        checkpointOptions.getCheckpointType().getSharingFilesStrategy();
    CheckpointInfo info = db.checkpoint(checkpointId, null);
    List<StateMetaInfoSnapshot> metas = new ArrayList<>();
    for (Registered r : states.values()) {
      metas.add(r.meta.snapshot());
    }
    KeyedBackendSerializationProxy<K> proxy =
        new KeyedBackendSerializationProxy<>(keySerializer, metas, false);
    Map<String, StreamStateHandle> reuse;
    synchronized (uploads) {
      reuse =
          sharing == SnapshotType.SharingFilesStrategy.FORWARD_BACKWARD && confirmed != null
              ? new HashMap<>(confirmed)
              : Map.of();
    }
    return new FutureTask<>(
        () -> {
          try {
            return upload(checkpointId, info, proxy, reuse, sharing, streamFactory);
          } finally {
            releaseInPlace(checkpointId);
          }
        });
  }

  private void releaseInPlace(long checkpointId) throws StrataException {
    dbLock.readLock().lock();
    try {
      if (!disposed) {
        db.releaseCheckpoint(checkpointId, null);
      }
    } finally {
      dbLock.readLock().unlock();
    }
  }

  private SnapshotResult<KeyedStateHandle> upload(
      long checkpointId,
      CheckpointInfo info,
      KeyedBackendSerializationProxy<K> proxy,
      Map<String, StreamStateHandle> reuse,
      SnapshotType.SharingFilesStrategy sharing,
      CheckpointStreamFactory streamFactory)
      throws Exception {
    boolean shareable = sharing != SnapshotType.SharingFilesStrategy.NO_SHARING;
    CheckpointedStateScope scope =
        shareable ? CheckpointedStateScope.SHARED : CheckpointedStateScope.EXCLUSIVE;
    List<HandleAndLocalPath> shared = new ArrayList<>();
    List<HandleAndLocalPath> own = new ArrayList<>();
    Map<String, StreamStateHandle> files = new HashMap<>();
    String[] names = new String[info.fileCount()];
    long persisted = 0;
    try {
      for (int i = 0; i < info.fileCount(); i++) {
        String local = info.localFile(i);
        if (local == null) {
          throw new IOException("file " + info.filePath(i) + " of checkpoint " + checkpointId + " is not local");
        }
        names[i] = String.format("%06d.sst", i);
        StreamStateHandle previous = reuse.get(local);
        if (previous != null) {
          shared.add(
              HandleAndLocalPath.of(
                  new PlaceholderStreamStateHandle(
                      previous.getStreamStateHandleID(), previous.getStateSize(), false),
                  names[i]));
          files.put(local, previous);
          continue;
        }
        StreamStateHandle h = uploadFile(Path.of(local), scope, streamFactory);
        persisted += h.getStateSize();
        (shareable ? shared : own).add(HandleAndLocalPath.of(h, names[i]));
        files.put(local, h);
      }
      StreamStateHandle meta;
      try (CheckpointStateOutputStream out =
          streamFactory.createCheckpointStateOutputStream(CheckpointedStateScope.EXCLUSIVE)) {
        registerCloseable(out);
        DataOutputViewStreamWrapper view = new DataOutputViewStreamWrapper(out);
        view.writeInt(META_MAGIC);
        view.writeInt(META_VERSION);
        proxy.write(view);
        byte[] manifest = info.manifest();
        view.writeInt(manifest.length);
        view.write(manifest);
        view.writeInt(names.length);
        for (String n : names) {
          view.writeUTF(n);
        }
        meta = out.closeAndGetHandle();
        unregisterCloseable(out);
      }
      persisted += meta.getStateSize();
      if (shareable) {
        synchronized (uploads) {
          pendingUploads.put(checkpointId, files);
        }
      }
      return SnapshotResult.of(
          new IncrementalRemoteKeyedStateHandle(
              backendId, keyGroupRange, checkpointId, shared, own, meta, persisted));
    } catch (Exception e) {
      // Discard what this checkpoint uploaded; reused handles belong to earlier ones.
      for (HandleAndLocalPath hp : shared) {
        if (!(hp.getHandle() instanceof PlaceholderStreamStateHandle)) {
          discardQuietly(hp.getHandle());
        }
      }
      for (HandleAndLocalPath hp : own) {
        discardQuietly(hp.getHandle());
      }
      throw e;
    }
  }

  private static void discardQuietly(StreamStateHandle h) {
    try {
      h.discardState();
    } catch (Exception e) {
      // Best effort: Flink's checkpoint cleanup removes the directory of a failed checkpoint.
    }
  }

  private void registerCloseable(java.io.Closeable c) throws IOException {
    snapshotStreams.registerCloseable(c);
  }

  private void unregisterCloseable(java.io.Closeable c) {
    snapshotStreams.unregisterCloseable(c);
  }

  private StreamStateHandle uploadFile(
      Path file, CheckpointedStateScope scope, CheckpointStreamFactory streamFactory)
      throws IOException {
    CheckpointStateOutputStream out = streamFactory.createCheckpointStateOutputStream(scope);
    registerCloseable(out);
    try {
      try (InputStream in = Files.newInputStream(file)) {
        copy(in, out);
      }
      StreamStateHandle h = out.closeAndGetHandle();
      if (h == null) {
        throw new IOException("no handle for the upload of " + file);
      }
      return h;
    } finally {
      unregisterCloseable(out);
      out.close();
    }
  }

  private static void copy(InputStream in, OutputStream out) throws IOException {
    byte[] buf = new byte[64 << 10];
    int n;
    while ((n = in.read(buf)) > 0) {
      out.write(buf, 0, n);
    }
  }

  @Override
  public void notifyCheckpointComplete(long checkpointId) {
    synchronized (uploads) {
      Map<String, StreamStateHandle> files = pendingUploads.get(checkpointId);
      if (files != null) {
        confirmed = files;
      }
      pendingUploads.headMap(checkpointId, true).clear();
    }
  }

  @Override
  public void notifyCheckpointAborted(long checkpointId) {
    synchronized (uploads) {
      pendingUploads.remove(checkpointId);
    }
  }

  @Override
  public SavepointResources<K> savepoint() {
    throw new UnsupportedOperationException(
        "the Strata backend writes native savepoints only (SavepointFormatType.NATIVE)");
  }

  @Override
  public String getBackendTypeIdentifier() {
    return "strata";
  }

  @Override
  public boolean requiresLegacySynchronousTimerSnapshots(SnapshotType checkpointType) {
    return false;
  }

  @Override
  public void dispose() {
    dbLock.writeLock().lock();
    try {
      if (disposed) {
        return;
      }
      disposed = true;
      closeQuietly(snapshotStreams);
      super.dispose();
      for (Registered r : states.values()) {
        closeQuietly(r.table);
      }
      closeQuietly(db);
    } finally {
      dbLock.writeLock().unlock();
    }
    if (reservedMemory > 0) {
      memoryManager.releaseMemory(instanceDir, reservedMemory);
    }
    try {
      deleteTree(instanceDir);
    } catch (IOException e) {
      // Leftover local files do not affect correctness; the TaskManager's tmp cleanup takes them.
    }
  }

  /**
   * Deletes {@code p} and everything under it. Entries that vanish while the walk runs (Flink's
   * I/O threads dispose subsumed checkpoints asynchronously, also after a job ends) are skipped
   * rather than failing the walk.
   */
  static void deleteTree(Path p) throws IOException {
    Files.walkFileTree(
        p,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
            Files.deleteIfExists(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
            if (e instanceof NoSuchFileException) {
              return FileVisitResult.CONTINUE;
            }
            throw e;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
            if (e != null && !(e instanceof NoSuchFileException)) {
              throw e;
            }
            Files.deleteIfExists(dir);
            return FileVisitResult.CONTINUE;
          }
        });
  }
}
