"""A SavedModel is a program: list its ops before anything loads or runs it.

``tf.saved_model.load`` runs the model's restore and init functions, and converting it runs
its signature: a graph that calls ``WriteFile`` writes that file during ``edge-fer convert``.
:func:`check_savedmodel_ops` reads ``saved_model.pb`` as data (protobuf only, nothing
executes), collects the op types of the graph and of every function in its library, and
refuses side-effecting ones (file system, Python callbacks, printing to a stream, network and
distributed runtime) with one line naming them. ``--trust-model`` skips the check.

The checkpoint ops (``SaveV2``, ``RestoreV2``...) are file-system ops too; they are allowed
only inside the functions that the SavedModel's own ``saver_def`` names, which TensorFlow
writes for every SavedModel to load and save its variables.
"""

from __future__ import annotations

from pathlib import Path

from edge_fer.errors import ModelError

#: Op types that touch files, run Python, print to a stream or talk to other machines.
SIDE_EFFECT_OPS = frozenset({
    # files
    "WriteFile", "ReadFile", "MatchingFiles", "Save", "SaveSlices", "SaveV2", "Restore", "RestoreSlice",
    "RestoreV2", "MergeV2Checkpoints", "WholeFileReader", "WholeFileReaderV2", "TextLineReader",
    "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "LMDBReader", "ReaderReadV2", "ReaderRead",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteRawProtoSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "ImportEvent", "FlushSummaryWriter", "CloseSummaryWriter",
    "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "TextLineDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "SnapshotDataset", "SnapshotDatasetV2", "CacheDataset", "CacheDatasetV2", "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset",
    "ExperimentalSqlDataset", "DistributedSave", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2",
    # Python code
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    # output streams (PrintV2 takes "file://..." as its stream)
    "Print", "PrintV2",
    # network and distributed runtime
    "Send", "Recv", "_Send", "_Recv", "_HostSend", "_HostRecv", "RpcClient", "RpcServer",
    "RpcServerStart", "RpcServerRegister", "RpcCall", "RpcCheckStatus", "RpcGetValue", "Rpc", "TryRpc",
    "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2", "GcsConfigureCredentials", "GcsConfigureBlockCache",
    "BigQueryReader", "CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3", "CollectiveGather",
    "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastRecv", "CollectiveBcastSendV2",
    "CollectiveBcastRecvV2", "CollectiveAllToAllV2", "CollectiveAllToAllV3", "NcclAllReduce",
    "NcclBroadcast", "NcclReduce", "ConfigureDistributedTPU", "ShutdownDistributedTPU",
})
#: What TensorFlow's own checkpoint functions (named by ``saver_def``) may use.
CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})


def _function_names(attr_values) -> list[str]:
    """Functions an op calls through its attributes (``f``, ``then_branch``, ``body``...)."""
    names = []
    for value in attr_values:
        if value.HasField("func"):
            names.append(value.func.name)
        if value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return names


def _reachable(start: list[str], functions: dict) -> set[str]:
    """Function names reachable from ``start`` (calls by attribute or by op type)."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            todo.extend(_function_names(node.attr.values()))
            if node.op in functions:
                todo.append(node.op)
    return seen


def savedmodel_ops(folder: str | Path) -> dict[str, set[str]]:
    """Side-effecting op type -> where it appears (``graph`` or a function name)."""
    from tensorflow.core.protobuf import saved_model_pb2

    folder = Path(folder)
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((folder / "saved_model.pb").read_bytes())
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ModelError(f"{folder.name}: saved_model.pb is not a readable SavedModel "
                         f"({type(exc).__name__})") from None
    found: dict[str, set[str]] = {}
    for graph in saved.meta_graphs:
        functions = {f.signature.name: f for f in graph.graph_def.library.function}
        nodes = {n.name: n for n in graph.graph_def.node}
        saver_nodes = [graph.saver_def.save_tensor_name.split(":")[0], graph.saver_def.restore_op_name]
        saver_functions = _reachable([f for n in saver_nodes if n in nodes
                                      for f in _function_names(nodes[n].attr.values())], functions)
        for node in graph.graph_def.node:
            if node.op in SIDE_EFFECT_OPS:
                found.setdefault(node.op, set()).add("graph")
        for name, function in functions.items():
            allowed = CHECKPOINT_OPS if name in saver_functions else frozenset()
            for node in function.node_def:
                if node.op in SIDE_EFFECT_OPS and node.op not in allowed:
                    found.setdefault(node.op, set()).add(name)
    return found


def check_savedmodel_ops(folder: str | Path) -> None:
    """ModelError naming the side-effecting ops of the SavedModel ``folder``, if it has any."""
    found = savedmodel_ops(folder)
    if found:
        ops = ", ".join(f"{op} (in {', '.join(sorted(where))})" for op, where in sorted(found.items()))
        raise ModelError(f"{Path(folder).name}: SavedModel runs side-effecting ops {ops}; a SavedModel is a "
                         "program and these touch files, run Python or use the network: refused (set "
                         "ConvertOptions.trust_model to convert it anyway)")
